"""Host names are resolved on Dispatchers.IO: a slow resolver never stalls Main."""
import socket
import threading
import time

import pytest

from genloop import kernel, rpc
from genloop.kernel import sleep, spawn
from genloop.net import open_connection, serve_tcp
from tests.net.netutil import HOST, until

pytestmark = pytest.mark.timeout(10)

#: How long the fake resolver takes; a ticker on Main must never wait this long.
SLOW = 0.5


@pytest.fixture
def slow_resolver(monkeypatch):
    """getaddrinfo that takes SLOW seconds and maps every name to 127.0.0.1; records its threads."""
    real = socket.getaddrinfo
    threads = []

    def getaddrinfo(host, port, *args, **kwargs):
        threads.append(threading.current_thread().name)
        time.sleep(SLOW)
        return real(HOST, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return threads


def ticked_while(connect):
    """Run ``connect(port)`` against an echo server while a 20 ms ticker runs on Main; the worst gap."""
    def echo(stream):
        while data := (yield from stream.read(100)):
            yield from stream.write_all(data)

    def main():
        server = yield from serve_tcp(echo, HOST, 0)
        gaps, stop = [], []

        def ticker():
            last = time.monotonic()
            while not stop:
                yield from sleep(0.02)
                gaps.append(time.monotonic() - last)
                last = time.monotonic()

        tick = yield from spawn(ticker)
        yield from until(lambda: tick.state == "waiting", "the ticker's first sleep")
        yield from connect(server.port)
        stop.append(1)
        yield from tick.join()
        yield from server.shutdown()
        return max(gaps)

    return kernel.run(main)


def test_open_connection_resolves_a_name_off_main(slow_resolver):
    def connect(port):
        stream = yield from open_connection("service.example", port)
        yield from stream.write_all(b"ok")
        assert (yield from stream.read(2)) == b"ok"
        stream.close()

    worst = ticked_while(connect)
    assert slow_resolver and all(name != threading.main_thread().name for name in slow_resolver)
    assert worst < SLOW / 2, f"Main stalled {worst:.3f} s while a name was resolved"


def test_rpc_connect_resolves_a_name_off_main(slow_resolver):
    def connect(port):
        client = yield from rpc.connect("service.example", port)
        client.close()

    assert ticked_while(connect) < SLOW / 2
    assert slow_resolver
