"""Shared harness of the rpc tests: a served kernel, a server on a thread, raw sockets.

Every wait is bounded by ``DEADLINE``: a broken build fails, it never hangs
and never relies on having slept "long enough".
"""
import contextlib
import math
import socket
import threading

import msgpack

from genloop import kernel
from genloop.kernel import Dispatchers, Event, with_context
from genloop.rpc import Server

HOST = "127.0.0.1"
#: Upper bound of every wait; passing tests finish far sooner.
DEADLINE = 5.0


def run_served(server: Server, body, *args, clock=None):
    """Run ``body(port, *args)`` in a fresh kernel with ``server`` listening on ``port``.

    Returns what ``body`` returns; the server is shut down afterwards either way.
    """
    def main():
        tcp = yield from server.start(HOST, 0)
        try:
            return (yield from body(tcp.port, *args))
        finally:
            yield from server.shutdown()

    return kernel.run(main, clock=clock)


@contextlib.contextmanager
def server_thread(server: Server):
    """Serve ``server`` from a kernel on its own thread; yield the port.

    For tests whose clients are plain threads or raw sockets. On exit the
    kernel is stopped and its thread joined; a failure in it fails the test.
    """
    ready = threading.Event()
    stop = Event()          # set from the test's thread: Event.set works from any thread
    port = None
    failure = []

    def main():
        nonlocal port
        tcp = yield from server.start(HOST, 0)
        port = tcp.port
        ready.set()
        yield from stop.wait()
        yield from server.shutdown()

    def target():
        try:
            kernel.run(main)
        except BaseException as e:  # noqa: BLE001 - reported in the test's thread
            failure.append(e)
        finally:
            ready.set()

    thread = threading.Thread(target=target, name="rpc-test-server")
    thread.start()
    try:
        assert ready.wait(DEADLINE), "the server did not start"
        if failure:
            raise failure[0]
        yield port
    finally:
        stop.set()
        thread.join(DEADLINE)
    assert not thread.is_alive(), "the server's kernel did not stop"
    if failure:
        raise failure[0]


def wait_thread_event(event: threading.Event):
    """Wait (a trap) for a ``threading.Event`` without blocking the kernel's Main thread."""
    ok = yield from with_context(Dispatchers.IO, event.wait, DEADLINE)
    assert ok, "a plain thread did not signal in time"


def raw_connect(port: int) -> socket.socket:
    """A plain blocking socket to the server: small writes leave at once."""
    sock = socket.create_connection((HOST, port), timeout=DEADLINE)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_messages(sock: socket.socket, count: int, unpacker=None) -> list:
    """Read from ``sock`` until ``count`` msgpack objects have been decoded."""
    unpacker = unpacker or msgpack.Unpacker(raw=False, strict_map_key=False)
    messages = []
    while len(messages) < count:
        data = sock.recv(65536)
        assert data, f"the server closed the connection after {len(messages)} of {count} messages"
        unpacker.feed(data)
        messages.extend(unpacker)
    return messages


def assert_same(got, want):
    """Equal *and* of the same types all the way down (1 == True == 1.0 would hide a bug)."""
    assert type(got) is type(want), (got, want)
    if isinstance(want, list):
        assert len(got) == len(want), (got, want)
        for g, w in zip(got, want):
            assert_same(g, w)
    elif isinstance(want, dict):
        assert len(got) == len(want), (got, want)
        for (gk, gv), (wk, wv) in zip(got.items(), want.items()):
            assert_same(gk, wk)
            assert_same(gv, wv)
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got)
    else:
        assert got == want, (got, want)
        if isinstance(want, float):
            assert math.copysign(1, got) == math.copysign(1, want), (got, want)
