"""The selectors fallback (for systems without epoll) serves sockets too."""
import socket

import pytest

import genloop.kernel.poller as poller_module
from genloop.kernel import run, spawn, wait_readable, wait_writable


@pytest.fixture
def no_epoll(monkeypatch):
    monkeypatch.setattr(poller_module, "_EPOLL", False)


def test_fallback_poller_wakes_readers_and_writers(no_epoll):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)

    def reader():
        yield from wait_readable(a)
        return a.recv(100)

    def main():
        t = yield from spawn(reader)
        yield from wait_writable(b)
        b.send(b"ping")
        return (yield from t.join())

    try:
        assert run(main) == b"ping"
    finally:
        a.close()
        b.close()
