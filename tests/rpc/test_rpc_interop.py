"""We speak the spec: plain-socket peers written here talk to our server and our client."""
import contextlib
import socket
import threading

import msgpack
import pytest

from genloop import kernel, rpc
from genloop.kernel import gather, spawn, timeout_after
from genloop.rpc import ConnectionLost, RemoteError, Server
from tests.rpc.rpcutil import DEADLINE, HOST, raw_connect, read_messages, server_thread

# -- a hand-rolled client against our server ---------------------------------


def test_plain_socket_client_calls_our_server():
    server = Server()
    server.register("add", lambda a, b: a + b)
    notes = []
    server.register("note", notes.append)
    with server_thread(server) as port, raw_connect(port) as sock:
        sock.sendall(msgpack.packb([2, "note", ["hi"]])
                     + msgpack.packb([0, 1, "add", [2, 3]])
                     + msgpack.packb([0, 2, b"add", [-10, 4]])      # method name as bin, as old peers send it
                     + msgpack.packb([0, 3, "nope", []]))
        answers = {a[1]: a for a in read_messages(sock, 3)}
    assert answers[1] == [1, 1, None, 5]
    assert answers[2] == [1, 2, None, -6]
    kind, msgid, error, result = answers[3]
    assert (kind, msgid, result) == (1, 3, None)
    assert error[0] == "NoMethodError" and "nope" in error[1]
    assert notes == ["hi"]


# -- our client against a hand-rolled server ---------------------------------


@contextlib.contextmanager
def plain_server(answer):
    """A one-connection msgpack-rpc server on a plain thread; ``answer(msg)`` -> bytes to send."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(DEADLINE)

    def serve():
        with contextlib.suppress(OSError), listener.accept()[0] as conn:
            conn.settimeout(DEADLINE)
            unpacker = msgpack.Unpacker(raw=False)
            while data := conn.recv(65536):
                unpacker.feed(data)
                for msg in unpacker:
                    conn.sendall(answer(msg))

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(DEADLINE)
        listener.close()
    assert not thread.is_alive()


def calculator(msg):
    _, msgid, method, params = msg
    if method == "add":
        return msgpack.packb([1, msgid, None, sum(params)])
    return msgpack.packb([1, msgid, f"no method {method}", None])   # an error that is just a string


def test_our_client_calls_a_plain_server():
    def main(port):
        client = yield from rpc.connect(HOST, port)
        try:
            sums = yield from gather(*(client.call("add", i, i) for i in range(20)))
            with pytest.raises(RemoteError) as info:
                yield from client.call("mul", 2, 3)
        finally:
            client.close()
        return sums, info.value

    with plain_server(calculator) as port:
        sums, err = kernel.run(main, port)
    assert sums == [2 * i for i in range(20)]
    assert err.error == "no method mul" and err.type is None


def test_answer_received_just_before_garbage_still_reaches_its_caller():
    # The server answers one call and breaks the stream in the same write.
    def answer(msg):
        _, msgid, method, _ = msg
        return msgpack.packb([1, msgid, None, method]) + b"\xc1" if method == "answered" else b""

    def main(port):
        client = yield from rpc.connect(HOST, port)
        first = yield from spawn(client.call, "unanswered")
        second = yield from spawn(client.call, "answered")
        with pytest.raises(ConnectionLost):
            yield from timeout_after(DEADLINE, first.join)
        return (yield from timeout_after(DEADLINE, second.join))

    with plain_server(answer) as port:
        assert kernel.run(main, port) == "answered"
