"""wait_readable / wait_writable on socketpairs, pipes and TCP sockets on 127.0.0.1."""
import contextlib
import os
import socket
import threading

import pytest

from genloop.kernel import (
    BusyResourceError,
    ClosedResourceError,
    Dispatchers,
    Timeout,
    notify_closing,
    run,
    sleep,
    spawn,
    timeout_after,
    wait_readable,
    wait_writable,
)
from tests.kernel.kernel_helpers import until, when_state


@contextlib.contextmanager
def socketpair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@contextlib.contextmanager
def pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    try:
        yield r, w
    finally:
        os.close(r)
        os.close(w)


def recv_some(sock, n=65536):
    """The kernel's idiom: try the call, wait only on BlockingIOError."""
    while True:
        try:
            return sock.recv(n)
        except BlockingIOError:
            yield from wait_readable(sock)


def read_some(fd, n=65536):
    while True:
        try:
            return os.read(fd, n)
        except BlockingIOError:
            yield from wait_readable(fd)


def fill(send):
    """Write until the kernel buffer is full; return the byte count."""
    total = 0
    chunk = b"x" * 65536
    while True:
        try:
            total += send(chunk)
        except BlockingIOError:
            return total


@pytest.mark.parametrize("dispatcher", [Dispatchers.Main, Dispatchers.Default],
                         ids=["Main", "Default"])
def test_wait_readable_on_a_socketpair(dispatcher):
    with socketpair() as (a, b):
        def reader():
            data = yield from recv_some(a)
            return data, threading.current_thread().name

        def main():
            t = yield from spawn(reader, dispatcher=dispatcher)
            yield from until(lambda: t.state == "waiting", what="reader parked on the socket")
            b.send(b"hello")
            return (yield from t.join())

        data, name = run(main)
    assert data == b"hello"
    if dispatcher is Dispatchers.Default:
        assert name.startswith("genloop-Default-")


def test_wait_readable_when_data_is_already_there():
    with socketpair() as (a, b):
        b.send(b"early")

        def main():
            yield from wait_readable(a)
            return a.recv(100)

        assert run(main) == b"early"


def test_wait_writable_waits_for_room_on_a_socketpair():
    with socketpair() as (a, b):
        def writer():
            written = fill(a.send)
            assert written > 0
            yield from wait_writable(a)          # only returns once the reader made room
            return a.send(b"more")

        def drainer():
            total = 0
            while True:
                try:
                    total += len(b.recv(1 << 20))
                except BlockingIOError:
                    return total
            yield  # pragma: no cover

        def main():
            w = yield from spawn(writer)
            yield from until(lambda: w.state == "waiting", what="writer parked on a full socket")
            drained = yield from (yield from spawn(drainer)).join()
            assert drained > 0
            return (yield from w.join())

        assert run(main) == 4


def test_wait_writable_on_a_fresh_socket_returns():
    with socketpair() as (a, _b):
        def main():
            yield from wait_writable(a)
            return a.send(b"x")

        assert run(main) == 1


def test_wait_readable_on_a_pipe_fd():
    with pipe() as (r, w):
        def reader():
            return (yield from read_some(r))

        def main():
            t = yield from spawn(reader)
            yield from until(lambda: t.state == "waiting", what="reader parked on the pipe")
            os.write(w, b"through a pipe")
            return (yield from t.join())

        assert run(main) == b"through a pipe"


def test_wait_writable_on_a_full_pipe():
    with pipe() as (r, w):
        def writer():
            fill(lambda data: os.write(w, data))
            yield from wait_writable(w)
            return os.write(w, b"!")

        def main():
            t = yield from spawn(writer)
            yield from until(lambda: t.state == "waiting", what="writer parked on a full pipe")
            while True:
                try:
                    os.read(r, 1 << 20)
                except BlockingIOError:
                    break
            return (yield from t.join())

        assert run(main) == 1


@pytest.mark.concurrency
def test_data_from_a_plain_thread_wakes_the_reader():
    """Main sleeps in epoll with no timers; the write from another thread must wake it."""
    with socketpair() as (a, b):
        def main():
            t = yield from spawn(recv_some, a)
            th = when_state(t, "waiting", lambda: b.send(b"from a thread"))
            data = yield from t.join()
            th.join()
            return data

        assert run(main) == b"from a thread"


def test_many_readers_on_many_sockets():
    pairs = [socket.socketpair() for _ in range(20)]
    try:
        for a, b in pairs:
            a.setblocking(False)

        def main():
            ts = []
            for a, _ in pairs:
                ts.append((yield from spawn(recv_some, a)))
            yield from until(lambda: all(t.state == "waiting" for t in ts), what="readers parked")
            for i, (_, b) in enumerate(reversed(pairs)):
                b.send(str(i).encode())
            out = []
            for t in ts:
                out.append((yield from t.join()))
            return out

        assert run(main) == [str(i).encode() for i in reversed(range(20))]
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_two_waiters_for_the_same_readiness_is_an_error():
    with socketpair() as (a, b):
        def main():
            first = yield from spawn(wait_readable, a)
            yield from until(lambda: first.state == "waiting", what="first reader parked")
            with pytest.raises(BusyResourceError):
                yield from wait_readable(a)
            b.send(b"x")
            yield from first.join()

        run(main)


def test_reader_and_writer_may_wait_on_one_socket():
    with socketpair() as (a, b):
        def writer():
            fill(a.send)
            yield from wait_writable(a)
            return "wrote"

        def main():
            r = yield from spawn(recv_some, a)
            w = yield from spawn(writer)
            yield from until(lambda: r.state == w.state == "waiting", what="both parked")
            b.send(b"ping")
            assert (yield from r.join()) == b"ping"
            while True:
                try:
                    b.recv(1 << 20)
                except BlockingIOError:
                    break
            return (yield from w.join())

        assert run(main) == "wrote"


def test_notify_closing_wakes_the_waiter_with_closed_resource_error():
    with socketpair() as (a, b):
        def main():
            t = yield from spawn(wait_readable, a)
            yield from until(lambda: t.state == "waiting", what="reader parked")
            notify_closing(a)
            with pytest.raises(ClosedResourceError):
                yield from t.join()

        run(main)


def test_a_new_socket_reusing_a_closed_sockets_fd_works():
    def main():
        a, b = socket.socketpair()
        a.setblocking(False)
        b.send(b"1")
        assert (yield from recv_some(a)) == b"1"
        old = a.fileno()
        a.close()
        b.close()
        c, d = socket.socketpair()
        c.setblocking(False)
        try:
            assert c.fileno() == old or d.fileno() == old
            reader = c if c.fileno() == old else d
            writer = d if reader is c else c
            reader.setblocking(False)
            t = yield from spawn(recv_some, reader)
            yield from until(lambda: t.state == "waiting", what="reader parked")
            writer.send(b"2")
            return (yield from timeout_after(2, t.join))
        finally:
            c.close()
            d.close()

    assert run(main) == b"2"


def test_a_hang_up_does_not_carry_over_to_a_new_socket_under_its_number():
    """A hang-up makes every later wait on its fd return at once, until a new file takes the number."""
    def main():
        a, b = socket.socketpair()
        a.setblocking(False)
        t = yield from spawn(wait_readable, a)
        yield from until(lambda: t.state == "waiting", what="reader parked")
        b.close()                            # the hang-up wakes the reader...
        yield from timeout_after(2, t.join)
        yield from timeout_after(2, wait_readable, a)   # ...and every wait after it
        old = a.fileno()
        a.close()                            # without notify_closing: the poller still knows the number
        c, d = socket.socketpair()
        try:
            assert old in (c.fileno(), d.fileno())
            reader, writer = (c, d) if c.fileno() == old else (d, c)
            t = yield from spawn(wait_readable, reader)
            yield from until(lambda: t.state == "waiting" or t.done, what="reader parked or done")
            assert not t.done, "the new socket's first wait returned at once"
            writer.send(b"x")
            yield from timeout_after(2, t.join)
        finally:
            c.close()
            d.close()

    run(main)


def test_a_new_pipe_reusing_a_closed_pipes_fd_works():
    def main():
        r, w = os.pipe()
        os.write(w, b"1")
        yield from wait_readable(r)
        os.close(r)
        os.close(w)
        r2, w2 = os.pipe()
        try:
            assert r2 == r                   # the number came back
            t = yield from spawn(wait_readable, r2)
            yield from until(lambda: t.state == "waiting", what="reader parked")
            os.write(w2, b"2")
            try:
                yield from timeout_after(0.5, t.join)
            except Timeout:
                t.cancel()
                raise AssertionError("wait_readable on the new pipe never returned")
        finally:
            os.close(r2)
            os.close(w2)

    run(main)


@pytest.mark.concurrency
def test_tcp_echo_on_loopback():
    def server(listener, n_clients):
        for _ in range(n_clients):
            while True:
                try:
                    conn, _ = listener.accept()
                    break
                except BlockingIOError:
                    yield from wait_readable(listener)
            conn.setblocking(False)
            yield from spawn(echo, conn)

    def echo(conn):
        try:
            while data := (yield from recv_some(conn)):
                view = memoryview(data)
                while view:
                    try:
                        view = view[conn.send(view):]
                    except BlockingIOError:
                        yield from wait_writable(conn)
        finally:
            conn.close()

    def client(port, i):
        s = socket.socket()
        s.setblocking(False)
        try:
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                yield from wait_writable(s)
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
            payload = f"message {i} ".encode() * 1000
            sent = 0
            while sent < len(payload):
                try:
                    sent += s.send(payload[sent:])
                except BlockingIOError:
                    yield from wait_writable(s)
            got = b""
            while len(got) < len(payload):
                got += yield from recv_some(s)
            return got == payload
        finally:
            s.close()

    def main():
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        try:
            port = listener.getsockname()[1]
            srv = yield from spawn(server, listener, 10)
            clients = []
            for i in range(10):
                d = Dispatchers.Default if i % 2 else Dispatchers.Main
                clients.append((yield from spawn(client, port, i, dispatcher=d)))
            ok = []
            for c in clients:
                ok.append((yield from c.join()))
            yield from srv.join()
            return ok
        finally:
            listener.close()

    assert run(main) == [True] * 10


def test_sleep_and_io_together():
    """Main's poll must respect the next timer even while waiting for I/O."""
    with socketpair() as (a, b):
        def sender():
            yield from sleep(0.02)
            b.send(b"after a timer")

        def main():
            yield from spawn(sender)
            return (yield from recv_some(a))

        assert run(main) == b"after a timer"


def test_plain_thread_writer_to_a_pipe():
    with pipe() as (r, w):
        def main():
            t = yield from spawn(read_some, r)
            th = when_state(t, "waiting", lambda: os.write(w, b"pipe from thread"))
            data = yield from t.join()
            th.join()
            return data

        assert run(main) == b"pipe from thread"


@pytest.mark.parametrize("hang_up", ["shutdown", "close"])
def test_a_hang_up_that_comes_with_the_last_data_is_not_lost(hang_up):
    """Data and the peer's FIN in one edge: after reading the data, the next wait returns at once.

    Edge-triggered epoll reports them as one event; a reader that takes the
    data (a short read) and waits again would otherwise wait for ever, as an
    HTTP connection once did, until its keep-alive timeout.
    """
    with socketpair() as (a, b):
        a.setblocking(False)

        def reader():
            # A short read means the socket is drained: wait before the next
            # recv, saving the system call that would fail (net.http does this).
            got = []
            while True:
                yield from wait_readable(a)
                data = a.recv(4096)
                if not data:
                    return got
                got.append(data)

        def main():
            task = yield from spawn(reader)
            yield from until(lambda: task.state == "waiting", what="reader parked on the socket")
            b.sendall(b"last words")      # both before Main polls again: one epoll event
            b.shutdown(socket.SHUT_WR) if hang_up == "shutdown" else b.close()
            return (yield from timeout_after(2, task.join))

        assert run(main) == [b"last words"]
