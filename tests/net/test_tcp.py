"""serve_tcp under load and under abuse: many clients, big transfers, resets,
connection limits, dispatchers, failing handlers and graceful shutdown."""
import hashlib
import random
import socket
import struct
import threading
import time

import pytest

from genloop import kernel
from genloop.kernel import Cancelled, Dispatchers, Event, Timeout, gather, spawn, timeout_after, with_context
from genloop.net import open_connection, serve_tcp
from tests.net.netutil import DEADLINE, HOST, connect, until

pytestmark = pytest.mark.timeout(10)


def echo(stream):
    while data := (yield from stream.read(65536)):
        yield from stream.write_all(data)


def line_echo(stream):
    while line := (yield from stream.readline()):
        yield from stream.write_all(line)


def test_echo_with_500_concurrent_clients_tasks_and_threads():
    tasks, threads, rounds = 450, 50, 3

    def task_client(i):
        stream = yield from open_connection(HOST, port)
        try:
            for r in range(rounds):
                line = f"task {i} round {r}\n".encode()
                yield from stream.write_all(line)
                assert (yield from stream.readline()) == line
        finally:
            stream.close()
        return i

    def thread_client(i, failures):
        try:
            with connect(port) as sock:
                reader = sock.makefile("rb")
                for r in range(rounds):
                    line = f"thread {i} round {r}\n".encode()
                    sock.sendall(line)
                    assert reader.readline() == line
        except BaseException as e:  # noqa: BLE001 - reported by the test
            failures.append(e)

    def main():
        nonlocal port
        server = yield from serve_tcp(line_echo, HOST, 0)
        port = server.port
        failures = []
        plain = [threading.Thread(target=thread_client, args=(i, failures)) for i in range(threads)]
        for t in plain:
            t.start()
        done = yield from gather(*(task_client(i) for i in range(tasks)))
        for t in plain:
            yield from with_context(Dispatchers.IO, t.join, DEADLINE)
        yield from server.shutdown(1)
        return done, failures, server.accepted

    port = None
    done, failures, accepted = kernel.run(main)
    assert done == list(range(tasks))
    assert failures == []
    assert accepted == tasks + threads


def test_ten_megabytes_in_odd_sized_pieces_through_one_connection():
    size = 10 * 1024 * 1024
    rng = random.Random(7)
    data = rng.randbytes(size)

    def main():
        server = yield from serve_tcp(echo, HOST, 0)
        stream = yield from open_connection(HOST, server.port)

        def writer():
            at = 0
            while at < size:
                n = rng.choice((1, 7, 333, 4093, 65537, 131071))
                yield from stream.write_all(data[at:at + n])
                at += n
            stream.socket.shutdown(socket.SHUT_WR)

        def reader():
            digest = hashlib.sha256()
            got = 0
            while chunk := (yield from stream.read(99991)):
                digest.update(chunk)
                got += len(chunk)
            return got, digest.hexdigest()

        _, result = yield from gather(writer(), reader())
        stream.close()
        yield from server.shutdown(1)
        return result

    assert kernel.run(main) == (size, hashlib.sha256(data).hexdigest())


def test_a_peer_reset_mid_message_ends_only_its_handler():
    ended = []

    def exact(stream):
        try:
            data = yield from stream.readexactly(1000)
            yield from stream.write_all(data[:10])
        except BaseException as e:
            ended.append(type(e))
            raise

    def main():
        server = yield from serve_tcp(exact, HOST, 0)
        rude = yield from open_connection(HOST, server.port)
        yield from rude.write_all(b"x" * 300)                 # a third of a message
        yield from until(lambda: server.accepted == 1, "the accept")
        rude.socket.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        rude.close()                                          # RST, not FIN
        yield from until(lambda: ended, "the handler to end")
        polite = yield from open_connection(HOST, server.port)
        yield from polite.write_all(b"y" * 1000)
        answer = yield from polite.readexactly(10)
        polite.close()
        yield from server.shutdown(1)
        return answer

    assert kernel.run(main) == b"y" * 10
    assert ended[0] is ConnectionResetError


def test_max_connections_leaves_extra_clients_waiting_then_serves_them():
    started = []
    release = Event()

    def held(stream):
        started.append(stream)
        yield from release.wait()
        yield from stream.write_all(b"served\n")

    def main():
        server = yield from serve_tcp(held, HOST, 0, max_connections=2)
        clients = []
        for _ in range(4):
            clients.append((yield from open_connection(HOST, server.port)))
        yield from until(lambda: len(started) == 2, "two handlers")
        # The other two are connected (the OS finished their handshakes) but
        # not accepted: no third handler starts while the first two hold.
        with pytest.raises(Timeout):
            yield from timeout_after(0.2, until, lambda: len(started) > 2)
        assert server.accepted == 2
        release.set()
        answers = yield from gather(*(c.readline() for c in clients))
        for c in clients:
            c.close()
        yield from server.shutdown(1)
        return answers

    assert kernel.run(main) == [b"served\n"] * 4
    assert len(started) == 4


@pytest.mark.parametrize("dispatcher, thread_prefix", [
    (None, threading.current_thread().name), (Dispatchers.Default, "genloop-Default"), (Dispatchers.IO, "genloop-IO"),
])
def test_handlers_run_on_the_dispatcher_asked_for(dispatcher, thread_prefix):
    seen = set()

    def where(stream):
        seen.add(threading.current_thread().name)
        yield from line_echo(stream)

    def client(port, i):
        stream = yield from open_connection(HOST, port)
        for r in range(20):
            line = b"%d %d\n" % (i, r)
            yield from stream.write_all(line)
            assert (yield from stream.readline()) == line
        stream.close()

    def main():
        server = yield from serve_tcp(where, HOST, 0, dispatcher=dispatcher)
        yield from gather(*(client(server.port, i) for i in range(20)))
        yield from server.shutdown(1)

    kernel.run(main)
    assert seen and all(name.startswith(thread_prefix) for name in seen), seen


def test_a_failing_handler_closes_only_its_connection(caplog):
    def picky(stream):
        while line := (yield from stream.readline()):
            if line == b"boom\n":
                raise RuntimeError("boom")
            yield from stream.write_all(line)

    def main():
        server = yield from serve_tcp(picky, HOST, 0)
        good = yield from open_connection(HOST, server.port)
        bad = yield from open_connection(HOST, server.port)
        yield from bad.write_all(b"boom\n")
        assert (yield from bad.read()) == b""                # closed by the server
        for i in range(3):
            yield from good.write_all(b"fine %d\n" % i)
            assert (yield from good.readline()) == b"fine %d\n" % i
        late = yield from open_connection(HOST, server.port)  # still accepting
        yield from late.write_all(b"late\n")
        assert (yield from late.readline()) == b"late\n"
        for s in (good, bad, late):
            s.close()
        yield from server.shutdown(1)

    kernel.run(main)
    assert "handler failed" in caplog.text and "boom" in caplog.text


def test_shutdown_lets_finishing_connections_complete_and_cancels_stuck_ones():
    grace = 0.3
    release = Event()
    cancelled = []

    def handler(stream):
        request = yield from stream.readline()
        try:
            if request == b"quick\n":
                yield from release.wait()
                yield from stream.write_all(b"done\n")
            else:
                yield from Event().wait()                      # stuck for good
        except Cancelled:
            cancelled.append(request)
            raise

    def main():
        server = yield from serve_tcp(handler, HOST, 0)
        quick = yield from open_connection(HOST, server.port)
        stuck = yield from open_connection(HOST, server.port)
        yield from quick.write_all(b"quick\n")
        yield from stuck.write_all(b"stuck\n")
        yield from until(lambda: server.accepted == 2, "both accepts")
        started = time.monotonic()
        stopping = yield from spawn(server.shutdown, grace)
        yield from until(lambda: server.listener.closed, "the listener to close")
        with pytest.raises(OSError):
            yield from open_connection(HOST, server.port)     # no longer accepting
        release.set()
        answer = yield from quick.readline()
        yield from stopping.join()
        took = time.monotonic() - started
        closed = yield from stuck.read()
        quick.close()
        stuck.close()
        return answer, closed, took

    answer, closed, took = kernel.run(main)
    assert answer == b"done\n"
    assert closed == b""
    assert cancelled == [b"stuck\n"]
    assert grace <= took < grace + 1.0
