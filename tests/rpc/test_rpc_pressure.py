"""An rpc server under a peer that sends requests and never reads: memory and tasks stay bounded.

The server runs in a subprocess (``tests.rpc.memory_server``) whose resident
set is read from ``/proc``; the hostile peer is a raw socket that sends
6,400 requests at once and reads nothing, while a normal client goes on.
"""
import logging
import os
import socket

import msgpack
import pytest

from genloop.rpc import BlockingClient, Server
from genloop.rpc.peer import MAX_IN_FLIGHT
from tests.net.netutil import rss, server_process
from tests.rpc.rpcutil import HOST, raw_connect, read_messages, server_thread

pytestmark = [pytest.mark.timeout(60), pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                                                          reason="reads VmRSS from /proc")]

REQUESTS = 6_400
#: What one peer that never reads may cost the server, at most.
RSS_BOUND = 32 << 20
#: Round trips of the normal client while the hostile peer waits.
ROUNDS = 20


@pytest.fixture
def server():
    with server_process("tests.rpc.memory_server") as served:
        yield served


def flood(port: int, method: str) -> socket.socket:
    """A peer that sends REQUESTS calls of ``method`` and never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((HOST, port))
    data = b"".join(msgpack.packb([0, i, method, []]) for i in range(REQUESTS))
    sock.settimeout(5)
    sock.sendall(data)                 # the server reads it all (it is small); answers are the weight
    return sock


def test_plain_methods_pause_at_the_high_water_mark(server):
    proc, port = server
    with BlockingClient(HOST, port, timeout=10) as client:
        client.call("count")
        before = rss(proc.pid)
        hostile = flood(port, "big")
        try:
            peak = 0
            for _ in range(ROUNDS):                      # the server goes on serving others
                assert client.call("count") == 0
                peak = max(peak, rss(proc.pid))
        finally:
            hostile.close()
    assert peak - before < RSS_BOUND, f"server RSS grew by {(peak - before) >> 20} MiB"


def test_coroutine_methods_in_flight_are_capped(server):
    proc, port = server
    with BlockingClient(HOST, port, timeout=10) as client:
        client.call("count")
        before = rss(proc.pid)
        hostile = flood(port, "park")
        try:
            while client.call("count") < MAX_IN_FLIGHT:
                pass
            counts = {client.call("count") for _ in range(ROUNDS)}
            peak = rss(proc.pid)
        finally:
            hostile.close()
    assert counts == {MAX_IN_FLIGHT}
    assert peak - before < RSS_BOUND, f"server RSS grew by {(peak - before) >> 20} MiB"


def test_unknown_notifications_are_logged_once_per_method(caplog):
    server = Server()
    server.register("ping", lambda: "pong")
    frames = [msgpack.packb([2, name, []]) for name in ("nope", "nada") for _ in range(500)]
    with caplog.at_level(logging.WARNING, logger="genloop.rpc"), server_thread(server) as port:
        with raw_connect(port) as sock:
            sock.sendall(b"".join(frames) + msgpack.packb([0, 1, "ping", []]))
            answers = read_messages(sock, 1)
    assert answers == [[1, 1, None, "pong"]]
    unknown = [r.getMessage() for r in caplog.records if "unknown method" in r.getMessage()]
    assert len(unknown) == 2 and "'nope'" in unknown[0] and "'nada'" in unknown[1]
