"""One fd, several objects: a socket and its makefile(), a text stream and its buffer share their waiters."""
import io
import os
import socket

import pytest

from genloop.kernel import (
    BusyResourceError,
    Cancelled,
    Dispatchers,
    run,
    spawn,
    timeout_after,
    wait_readable,
    wait_writable,
)
from tests.kernel.kernel_helpers import DEADLINE, until


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def joined(task):
    """Join, bounded: a waiter the poller dropped fails the test instead of hanging it."""
    return (yield from timeout_after(DEADLINE, task.join))


def parked(*tasks):
    return lambda: all(t.state == "waiting" for t in tasks)


@pytest.mark.parametrize("dispatcher", [Dispatchers.Main, Dispatchers.Default], ids=["Main", "Default"])
def test_a_socket_and_its_makefile_waiters_are_both_woken(pair, dispatcher):
    a, b = pair
    f = a.makefile("rb", buffering=0)

    def main():
        on_sock = yield from spawn(wait_readable, a, dispatcher=dispatcher)
        yield from until(parked(on_sock), what="first reader parked")
        on_file = yield from spawn(wait_readable, f, dispatcher=dispatcher)
        yield from until(parked(on_sock, on_file), what="both readers parked")
        b.send(b"x")
        yield from joined(on_sock)
        yield from joined(on_file)
        return on_sock.state, on_file.state

    try:
        assert run(main) == ("done", "done")
    finally:
        f.close()


def test_both_waiters_on_one_fd_can_be_cancelled(pair):
    a, b = pair
    f = a.makefile("rb", buffering=0)

    def main():
        first = yield from spawn(wait_readable, a)
        second = yield from spawn(wait_readable, f)
        third = yield from spawn(wait_readable, a.fileno())
        yield from until(parked(first, second, third), what="three readers parked")
        first.cancel()                   # the first waiter leaves: the others stay parked
        with pytest.raises(Cancelled):
            yield from joined(first)
        assert second.state == third.state == "waiting"
        second.cancel()
        with pytest.raises(Cancelled):
            yield from joined(second)
        b.send(b"x")                     # the last one is still woken
        yield from joined(third)

    try:
        run(main)
    finally:
        f.close()


def test_a_text_stream_and_its_buffer_on_one_pipe():
    """sys.stdin and sys.stdin.buffer, in miniature."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    raw = open(r, "rb", buffering=0, closefd=False)   # noqa: SIM115 - closed below
    text = io.TextIOWrapper(io.BufferedReader(raw))

    def main():
        on_text = yield from spawn(wait_readable, text)
        on_raw = yield from spawn(wait_readable, raw)
        yield from until(parked(on_text, on_raw), what="both readers parked")
        os.write(w, b"line\n")
        yield from joined(on_text)
        yield from joined(on_raw)

    try:
        run(main)
    finally:
        text.close()
        os.close(r)
        os.close(w)


def test_readers_and_writers_through_different_objects_are_independent(pair):
    a, b = pair
    f = a.makefile("rwb", buffering=0)

    def fill():
        try:
            while True:
                a.send(b"x" * 65536)
        except BlockingIOError:
            pass

    def main():
        fill()
        writer = yield from spawn(wait_writable, f)
        reader = yield from spawn(wait_readable, a)
        yield from until(parked(writer, reader), what="writer and reader parked")
        b.send(b"ping")
        yield from joined(reader)
        assert writer.state == "waiting"
        while True:
            try:
                b.recv(1 << 20)
            except BlockingIOError:
                break
        yield from joined(writer)

    try:
        run(main)
    finally:
        f.close()


def test_two_waiters_through_one_object_are_still_an_error(pair):
    a, b = pair
    f = a.makefile("rb", buffering=0)

    def main():
        first = yield from spawn(wait_readable, f)
        other = yield from spawn(wait_readable, a)
        yield from until(parked(first, other), what="readers parked")
        with pytest.raises(BusyResourceError):
            yield from wait_readable(f)
        with pytest.raises(BusyResourceError):
            yield from wait_readable(a)
        b.send(b"x")
        yield from joined(first)
        yield from joined(other)

    try:
        run(main)
    finally:
        f.close()
