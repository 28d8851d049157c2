"""Socket and Stream on real loopback sockets: partial reads, EOF, limits, close, timeouts."""
import socket

import pytest

from genloop import kernel
from genloop.kernel import ClosedResourceError, Event, Timeout, checkpoint, spawn
from genloop.net import IncompleteRead, LimitOverrun, Socket, Stream, open_connection, serve_tcp
from tests.net.netutil import HOST, until

pytestmark = pytest.mark.timeout(10)


def pair():
    """A connected (Stream, Stream) over loopback, made inside a kernel."""
    accepted = []

    def keep(stream):
        accepted.append(stream)
        yield from Event().wait()          # hold the connection open until cancelled

    server = yield from serve_tcp(keep, HOST, 0)
    client = yield from open_connection(HOST, server.port)
    yield from until(lambda: accepted, "the accept")
    return server, client, accepted[0]


def test_readexactly_across_many_small_packets_and_partial_at_eof():
    def main():
        server, client, peer = yield from pair()
        client.socket.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        message = bytes(range(256)) * 4

        def dribble():
            for i in range(0, len(message), 3):
                yield from client.write_all(message[i:i + 3])
                yield from checkpoint()        # let the reader take each piece alone
            yield from client.write_all(b"tail")
            client.socket.shutdown(socket.SHUT_WR)

        yield from spawn(dribble)
        got = yield from peer.readexactly(len(message))
        with pytest.raises(IncompleteRead) as info:
            yield from peer.readexactly(10)
        yield from server.shutdown(0)
        return got, info.value

    got, incomplete = kernel.run(main)
    assert got == bytes(range(256)) * 4
    assert incomplete.partial == b"tail" and incomplete.expected == 10


def test_limit_overrun_for_lines_and_exact_reads():
    def main():
        server, client, peer = yield from pair()
        peer.limit = 1024
        yield from client.write_all(b"x" * 3000)
        with pytest.raises(LimitOverrun):
            yield from peer.readuntil(b"\n")
        with pytest.raises(LimitOverrun):
            yield from peer.readexactly(2000)
        line = yield from peer.readexactly(1000)     # within the limit: still readable
        yield from server.shutdown(0)
        return line

    assert kernel.run(main) == b"x" * 1000


def test_half_close_then_read_the_rest():
    def upper(stream):
        data = yield from stream.read()              # until the client's EOF
        yield from stream.write_all(data.upper())
        stream.socket.shutdown(socket.SHUT_WR)

    def main():
        server = yield from serve_tcp(upper, HOST, 0)
        client = yield from open_connection(HOST, server.port)
        yield from client.write_all(b"hello, ")
        yield from client.write_all(b"half-closed world")
        client.socket.shutdown(socket.SHUT_WR)
        answer = yield from client.read()
        yield from server.shutdown(1)
        return answer

    assert kernel.run(main) == b"HELLO, HALF-CLOSED WORLD"


def test_close_wakes_a_waiting_reader_with_closed_resource_error():
    def main():
        server, client, peer = yield from pair()

        def reader():
            return (yield from client.socket.recv(100))

        task = yield from spawn(reader)
        yield from until(lambda: task.state == "waiting", "the reader to wait")
        client.close()
        with pytest.raises(ClosedResourceError):
            yield from task.join()
        yield from server.shutdown(0)

    kernel.run(main)


def test_open_connection_times_out_when_the_backlog_is_full():
    # A listener that never accepts, with a backlog of 0, takes one
    # handshake; further SYNs are dropped, so the next connect hangs.
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []

    def main():
        for _ in range(3):
            try:
                fillers.append((yield from open_connection(HOST, port, timeout=0.2)))
            except Timeout:
                return True
        return False

    try:
        assert kernel.run(main), "every connect succeeded: the backlog never filled"
    finally:
        listener.close()


def test_socket_methods_wait_instead_of_blocking():
    # A full send buffer makes sendall wait while the peer reads.
    def main():
        a, b = socket.socketpair()
        left, right = Socket(a), Socket(b)
        data = b"z" * (4 * 1024 * 1024)

        def drain():
            got = 0
            while got < len(data):
                got += len((yield from right.recv(65536)))
            return got

        reader = yield from spawn(drain)
        yield from left.sendall(data)
        got = yield from reader.join()
        left.close()
        right.close()
        return got

    assert kernel.run(main) == 4 * 1024 * 1024


def test_stream_readline_returns_the_partial_last_line_at_eof():
    def main():
        server, client, peer = yield from pair()
        yield from client.write_all(b"one\ntwo")
        client.socket.shutdown(socket.SHUT_WR)
        lines = []
        for _ in range(3):
            lines.append((yield from peer.readline()))
        yield from server.shutdown(0)
        return lines, peer.at_eof

    assert kernel.run(main) == ([b"one\n", b"two", b""], True)


def test_stream_repr_and_buffered():
    a, b = socket.socketpair()
    try:
        stream = Stream(Socket(a), peer=("p", 1))
        assert stream.buffered == 0 and "peer=('p', 1)" in repr(stream)
    finally:
        a.close()
        b.close()
