"""Every msgpack type survives a real round trip: our client -> socket -> our server -> back."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genloop import rpc
from genloop.rpc import BlockingClient, RemoteError, Server
from tests.rpc.rpcutil import HOST, assert_same, run_served, server_thread

INT64_MIN, UINT64_MAX = -2**63, 2**64 - 1

VALUES = [
    None, True, False,
    0, 1, -1, 127, 128, 255, 256, -32, -33, -128, -129, 65535, 65536, -32768, -32769,
    2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**32 - 1, 2**32, 2**63 - 1, INT64_MIN, UINT64_MAX,
    0.0, -0.0, 1.5, -2.25, 1e308, 5e-324, float("inf"), float("-inf"), float("nan"),
    "", "a", "héllo", "日本語", "😀 emoji", "x" * 300, "y" * 70_000,
    b"", b"\x00", b"\x00\xff\xfe", bytes(range(256)) * 300,
    [], [None], [1, "two", 3.0, b"four", [5, [6, [7]]]],
    {}, {"a": 1}, {1: "int key", -2: "negative key", 2**40: "big key"},
    {b"bin": "key"}, {None: 0, True: 1, 1.5: 2}, {"nested": {"list": [{}, {"k": [b""]}]}},
    list(range(20_000)), {i: str(i) for i in range(5_000)},
]


def echo_server():
    server = Server()
    server.register("echo", lambda value: value)
    server.register("echo_all", lambda *values: list(values))
    return server


@pytest.mark.parametrize("value", VALUES, ids=lambda v: repr(v)[:40])
def test_value_round_trips_as_argument_and_result(value):
    def body(port):
        client = yield from rpc.connect(HOST, port)
        got = yield from client.call("echo", value)
        client.close()
        return got

    assert_same(run_served(echo_server(), body), value)


def test_all_values_in_one_call_keep_their_order_and_types():
    def body(port):
        client = yield from rpc.connect(HOST, port)
        got = yield from client.call("echo_all", *VALUES)
        client.close()
        return got

    assert_same(run_served(echo_server(), body), VALUES)


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(INT64_MIN, UINT64_MAX) | st.floats()
    | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.integers(INT64_MIN, UINT64_MAX) | st.text() | st.binary(), inner, max_size=5),
    max_leaves=20)


@pytest.fixture(scope="module")
def blocking_echo():
    with server_thread(echo_server()) as port, BlockingClient(HOST, port, timeout=5) as client:
        yield client


@settings(max_examples=150, deadline=None)
@given(value=msgpack_values)
def test_generated_values_round_trip(blocking_echo, value):
    assert_same(blocking_echo.call("echo", value), value)


@pytest.mark.parametrize("arg", [2**64, -2**63 - 1, object()], ids=["2**64", "-2**63-1", "object"])
def test_unpackable_argument_fails_locally_and_the_client_goes_on(arg):
    def body(port):
        client = yield from rpc.connect(HOST, port)
        with pytest.raises((TypeError, OverflowError)):
            yield from client.call("echo", arg)
        got = yield from client.call("echo", "still here")
        client.close()
        return got

    assert run_served(echo_server(), body) == "still here"


def test_unpackable_result_becomes_a_remote_error():
    server = echo_server()
    server.register("bad_result", lambda: {1, 2})

    def body(port):
        client = yield from rpc.connect(HOST, port)
        with pytest.raises(RemoteError) as info:
            yield from client.call("bad_result")
        got = yield from client.call("echo", 7)
        client.close()
        return info.value, got

    err, got = run_served(server, body)
    assert err.type == "TypeError" and "not serialisable" in str(err)
    assert got == 7
