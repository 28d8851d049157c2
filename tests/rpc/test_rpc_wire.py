"""What the server makes of the bytes a raw socket sends: any chunking, garbage, notifications."""
import threading

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genloop.kernel import checkpoint
from genloop.rpc import BlockingClient, Server
from tests.rpc.rpcutil import DEADLINE, HOST, raw_connect, read_messages, server_thread

VALUE = {"text": "héllo", "ints": [0, -1, 2**63 - 1, -2**63], "bin": b"\x00\xff", "f": 1.5,
         7: [None, True, {}]}
NOTE_COROUTINE = "note_coroutine"


class Notes:
    """What the server's notification methods received (written on the server's thread)."""

    def __init__(self):
        self.values = []
        self.coroutine_ran = threading.Event()

    def plain(self, value):
        self.values.append(value)
        return "a notification must not be answered"

    def coroutine(self, value):
        yield from checkpoint()
        self.values.append(value)
        self.coroutine_ran.set()
        return "a notification must not be answered"


@pytest.fixture(scope="module")
def notes():
    return Notes()


@pytest.fixture(scope="module")
def port(notes):
    server = Server()
    server.register("echo", lambda value: value)
    server.register("note", notes.plain)
    server.register(NOTE_COROUTINE, notes.coroutine)
    with server_thread(server) as port:
        yield port


def request(msgid, value=VALUE):
    return msgpack.packb([0, msgid, "echo", [value]])


def test_request_written_one_byte_at_a_time(port):
    data = request(1)
    with raw_connect(port) as sock:
        for i in range(len(data)):
            sock.sendall(data[i:i + 1])
        [answer] = read_messages(sock, 1)
    assert answer == [1, 1, None, VALUE]


def test_request_split_at_every_byte_boundary(port):
    data = request(0)
    with raw_connect(port) as sock:
        for cut in range(1, len(data)):
            data = request(cut)
            sock.sendall(data[:cut])
            sock.sendall(data[cut:])
        answers = read_messages(sock, len(data) - 1)
    assert answers == [[1, cut, None, VALUE] for cut in range(1, len(data))]


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.text() | st.binary() | st.integers(-2**63, 2**64 - 1), min_size=1, max_size=8),
       cuts=st.lists(st.integers(min_value=1), max_size=12))
def test_any_chunking_of_pipelined_requests(port, values, cuts):
    stream = b"".join(request(i, v) for i, v in enumerate(values))
    bounds = sorted({c % len(stream) for c in cuts} | {0, len(stream)})
    with raw_connect(port) as sock:
        for start, end in zip(bounds, bounds[1:]):
            sock.sendall(stream[start:end])
        answers = read_messages(sock, len(values))
    assert sorted(answers, key=lambda a: a[1]) == [[1, i, None, v] for i, v in enumerate(values)]


GARBAGE = {
    "never-used byte": b"\xc1",
    "not an array": msgpack.packb("hello"),
    "unknown type": msgpack.packb([7, 1, "echo", []]),
    "msgid not an int": msgpack.packb([0, "one", "echo", []]),
    "params not an array": msgpack.packb([0, 1, "echo", "x"]),
    "truncated then garbage": request(5)[:4] + b"\xc1" * 64,
}


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_drops_only_that_connection(port, garbage):
    with BlockingClient(HOST, port, timeout=DEADLINE) as good, raw_connect(port) as bad:
        assert good.call("echo", "before") == "before"
        bad.sendall(garbage)
        assert bad.recv(65536) == b"", "the server answered garbage instead of hanging up"
        assert good.call("echo", "after") == "after"


@pytest.mark.parametrize("method", ["note", NOTE_COROUTINE])
def test_notification_runs_and_sends_nothing_back(port, notes, method):
    marker = f"noted by {method}"
    with raw_connect(port) as sock:
        sock.sendall(msgpack.packb([2, method, [marker]]))
        if method == NOTE_COROUTINE:
            # Its answer, if it wrongly sent one, is queued before our request arrives.
            assert notes.coroutine_ran.wait(DEADLINE)
        sock.sendall(request(9, "ping"))
        unpacker = msgpack.Unpacker(raw=False)
        assert read_messages(sock, 1, unpacker) == [[1, 9, None, "ping"]]
        assert list(unpacker) == [], "something else came back"
    assert marker in notes.values
