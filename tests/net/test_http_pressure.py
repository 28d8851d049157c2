"""serve_http under clients that do not read: memory stays bounded, streamed bodies flow.

The server runs in a subprocess (``tests.net.memory_server``) whose resident
set is read from ``/proc/<pid>/status``, so what is measured is the whole
server: buffers, parsed requests, queued answers.
"""
import os
import socket
import time

import pytest

from tests.net.netutil import HOST, connect, rss, server_process

pytestmark = [pytest.mark.timeout(60), pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                                                          reason="reads VmRSS from /proc")]

#: What 100 clients that never read may cost the server, at most.
RSS_BOUND = 64 << 20
CLIENTS = 100


@pytest.fixture
def server():
    with server_process("tests.net.memory_server") as served:
        yield served


def get(port: int, target: str) -> bytes:
    """One GET on a fresh connection; the body (Content-Length framed)."""
    with connect(port) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % target.encode())
        raw = b"".join(iter(lambda: sock.recv(65536), b""))
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:100]
    return raw.partition(b"\r\n\r\n")[2]


def stuff(sock: socket.socket, data: bytes) -> int:
    """Send what the socket takes of ``data`` without blocking."""
    sock.setblocking(False)
    sent = 0
    try:
        while sent < len(data):
            sent += sock.send(data[sent:sent + 65536])
    except BlockingIOError:
        pass
    return sent


def test_pipelining_clients_that_never_read_hold_bounded_memory(server):
    proc, port = server
    get(port, "/big")                                     # warm: imports, first buffers
    before = rss(proc.pid)
    hostile = []
    try:
        for i in range(CLIENTS):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((HOST, port))
            request = b"GET /big HTTP/1.1\r\nHost: t\r\nX-Client: %d\r\n\r\n" % i
            assert stuff(sock, request * (65536 // len(request))) > 0
            hostile.append(sock)
        deadline = time.monotonic() + 30
        peak = 0
        while int(get(port, "/seen")) < CLIENTS + 1:      # every hostile client has had its turn
            peak = max(peak, rss(proc.pid))
            assert time.monotonic() < deadline, "the server did not get round to every client"
        answered = get(port, "/big")                      # a normal client is still served
        peak = max(peak, rss(proc.pid))
    finally:
        for sock in hostile:
            sock.close()
    assert len(answered) == 100_000
    assert peak - before < RSS_BOUND, f"server RSS grew by {(peak - before) >> 20} MiB"


def read_streamed(sock: socket.socket, total: int, pid: int) -> tuple[bytes, float, float, int]:
    """Read a response of ``total`` body bytes: (head, time to the first byte, to the last, peak RSS)."""
    start = time.monotonic()
    first = None
    got = b""
    while b"\r\n\r\n" not in got:
        got += sock.recv(65536)
        first = first or time.monotonic() - start
    head, _, body = got.partition(b"\r\n\r\n")
    received, peak = len(body), 0
    while received < total:
        data = sock.recv(1 << 20)
        assert data, "the server closed before the whole body"
        received += len(data)
        peak = max(peak, rss(pid))
    return head, first, time.monotonic() - start, peak


@pytest.mark.parametrize("path, framing", [("/stream", b"transfer-encoding: chunked"),
                                           ("/produce", b"content-length: 419430400")])
def test_a_streamed_body_starts_at_once_and_is_never_gathered(server, path, framing):
    proc, port = server
    n = 400
    before = rss(proc.pid)
    with connect(port, timeout=30) as sock:
        sock.sendall(b"GET %s?n=%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % (path.encode(), n))
        head, first, last, peak = read_streamed(sock, n << 20, proc.pid)
    assert framing in head.lower()
    assert first < last / 4, f"first byte after {first:.2f} s of {last:.2f} s"
    assert peak - before < RSS_BOUND, f"server RSS grew by {(peak - before) >> 20} MiB"
