"""C10K: hold N keep-alive connections on one server and measure what each costs.

    python -m bench.c10k                                  # asyncio_streams, 10,000 connections
    python -m bench.c10k --style uvloop_protocol -n 2000 --json c10k.json

The server starts as in `bench.http_bench` (a style from `bench.servers`,
pinned to CPU 0). This process, pinned to CPU 1, reads the server's resident
memory, opens N connections from a single epoll loop (a socket and a small
buffer per connection, no thread or task each), sends one GET on every one,
waits for every answer, and reads the resident memory again while all N are
still open. Reported: time to connect them all (the kernel completes the
handshakes; the server may still be accepting), time until all answered, how
many were answered, RSS before and after, and (after - before) / connected
bytes per connection. RSS is summed over the server's process tree (nginx
serves from a child process). Above 20,000 connections the client binds its
sockets to 127.0.0.1, .2, ... in turn: one source address has only ~28,000
ephemeral ports to connect from.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import select
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import servers
from bench.loadgen import REQUEST, content_length
from bench.servers import tree  # also used by demos.harness

CONNECT_WINDOW = 512  # connects in flight at once: a flood overflows the SYN and accept
#                       queues, and every dropped SYN costs a one-second retransmit
CONNECTIONS_PER_SOURCE = 20_000  # stay well inside the default 32768-60999 ephemeral range
PHASE_TIMEOUT = 120.0  # seconds allowed for connecting, and again for the answers
POLL_INTERVAL = 0.1  # seconds per epoll.poll, so deadlines are noticed
FD_MARGIN = 64  # files besides the connections
RECV_SIZE = 4096


@dataclass
class Report:
    style: str
    connections: int
    connected: int
    answered: int
    connect_seconds: float
    answer_seconds: float
    rss_before: int  # bytes
    rss_after: int
    bytes_per_connection: float


def rss(pid: int) -> int:
    """Resident bytes of `pid`'s process tree, from /proc/PID/status VmRSS."""
    total = 0
    for member in tree(pid):
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def connect_all(port: int, n: int) -> list[socket.socket]:
    """Open up to `n` connections, at most CONNECT_WINDOW in progress at a time."""
    sources = math.ceil(n / CONNECTIONS_PER_SOURCE)
    deadline = time.monotonic() + PHASE_TIMEOUT
    connected: list[socket.socket] = []
    in_flight: dict[int, socket.socket] = {}
    started = failed = 0
    with select.epoll() as epoll:
        while len(connected) + failed < n and time.monotonic() < deadline:
            while started < n and len(in_flight) < CONNECT_WINDOW:
                source = f"127.0.0.{1 + started % sources}"
                started += 1
                sock = socket.socket()
                sock.setblocking(False)
                try:
                    if sources > 1:
                        sock.bind((source, 0))
                    if (error := sock.connect_ex(("127.0.0.1", port))) not in (0, errno.EINPROGRESS):
                        raise OSError(error, os.strerror(error))
                except OSError:
                    sock.close()
                    failed += 1
                    continue
                epoll.register(sock, select.EPOLLOUT)
                in_flight[sock.fileno()] = sock
            for fd, _ in epoll.poll(POLL_INTERVAL):
                sock = in_flight.pop(fd)
                epoll.unregister(fd)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    sock.close()
                    failed += 1
                else:
                    connected.append(sock)
    for sock in in_flight.values():
        sock.close()
    return connected


def answer_complete(buffer: bytearray) -> bool:
    end = buffer.find(b"\r\n\r\n") + 4
    return end >= 4 and len(buffer) >= end + content_length(buffer[:end])


def request_all(socks: list[socket.socket]) -> int:
    """Send one GET on every connection; return how many got a whole 200 answer."""
    deadline = time.monotonic() + PHASE_TIMEOUT
    buffers: dict[int, bytearray] = {}
    answered = 0
    with select.epoll() as epoll:
        for sock in socks:
            sock.send(REQUEST)  # a few dozen bytes into an empty socket buffer: never partial
            epoll.register(sock, select.EPOLLIN)
            buffers[sock.fileno()] = bytearray()
        by_fd = {sock.fileno(): sock for sock in socks}
        while buffers and time.monotonic() < deadline:
            for fd, _ in epoll.poll(POLL_INTERVAL):
                try:
                    data = by_fd[fd].recv(RECV_SIZE)
                except OSError:
                    data = b""
                buffer = buffers[fd]
                buffer += data
                if not data or answer_complete(buffer):
                    answered += bool(data) and buffer.startswith(b"HTTP/1.1 200 ")
                    del buffers[fd]
                    epoll.unregister(fd)
    return answered


def run(style: str, n: int) -> Report:
    servers.raise_nofile(n + FD_MARGIN)  # inherited by the server
    os.sched_setaffinity(0, {servers.CLIENT_CPU})
    with servers.running(style) as server:
        before = rss(server.pid)
        start = time.perf_counter()
        socks = connect_all(server.port, n)
        connected_at = time.perf_counter()
        try:
            answered = request_all(socks)
            answered_at = time.perf_counter()
            after = rss(server.pid)
        finally:
            for sock in socks:
                sock.close()
    return Report(style=style, connections=n, connected=len(socks), answered=answered,
                  connect_seconds=connected_at - start, answer_seconds=answered_at - connected_at,
                  rss_before=before, rss_after=after,
                  bytes_per_connection=(after - before) / max(1, len(socks)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--style", choices=servers.STYLES, default=servers.BASELINE)
    parser.add_argument("-n", "--connections", type=int, default=10_000)
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    args = parser.parse_args()
    report = run(args.style, args.connections)
    print(f"{report.style}: {report.connected:,}/{report.connections:,} connected in "
          f"{report.connect_seconds:.2f} s, {report.answered:,} answered in {report.answer_seconds:.2f} s; "
          f"server RSS {report.rss_before / 2**20:.1f} -> {report.rss_after / 2**20:.1f} MiB, "
          f"{report.bytes_per_connection:,.0f} bytes per connection")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(asdict(report), f, indent=2)
    sys.exit(0 if report.answered == report.connections else 1)


if __name__ == "__main__":
    main()
