"""A failing or missing method becomes a RemoteError; the server goes on serving."""
import pytest

from genloop import rpc
from genloop.kernel import checkpoint
from genloop.rpc import RemoteError, Server
from tests.rpc.rpcutil import HOST, run_served


def fail_plain(n):
    raise ValueError(f"bad value {n}")


def fail_coroutine(n):
    yield from checkpoint()
    raise ValueError(f"bad value {n}")


def failing_server(kind):
    server = Server()
    server.register("fail", fail_coroutine if kind == "coroutine" else fail_plain,
                    blocking=kind == "blocking")
    server.register("echo", lambda x: x)
    return server


@pytest.mark.parametrize("kind", ["plain", "coroutine", "blocking"])
def test_handler_exception_becomes_remote_error_and_server_goes_on(kind):
    def body(port):
        client = yield from rpc.connect(HOST, port)
        with pytest.raises(RemoteError) as info:
            yield from client.call("fail", 42)
        same_connection = yield from client.call("echo", "same")
        other = yield from rpc.connect(HOST, port)
        other_connection = yield from other.call("echo", "other")
        client.close()
        other.close()
        return info.value, same_connection, other_connection

    err, same, other = run_served(failing_server(kind), body)
    assert err.type == "ValueError"
    assert err.error == ["ValueError", "bad value 42"]
    assert err.method == "fail" and "ValueError: bad value 42" in str(err)
    assert (same, other) == ("same", "other")


def test_unknown_method_is_a_remote_error():
    def body(port):
        client = yield from rpc.connect(HOST, port)
        with pytest.raises(RemoteError) as info:
            yield from client.call("no_such_method", 1)
        client.notify("no_such_method_either")     # logged and dropped, nothing comes back
        got = yield from client.call("echo", "after")
        client.close()
        return info.value, got

    err, got = run_served(failing_server("plain"), body)
    assert err.type == "NoMethodError" and "no_such_method" in str(err)
    assert got == "after"


def test_wrong_argument_count_is_a_remote_type_error():
    def body(port):
        client = yield from rpc.connect(HOST, port)
        with pytest.raises(RemoteError) as info:
            yield from client.call("echo", 1, 2)
        client.close()
        return info.value

    assert run_served(failing_server("plain"), body).type == "TypeError"
