"""N connections held open on one server, and what each costs it: the c10k figures.

The connections come from one epoll loop in this process (a socket and a
small buffer each, no thread or task), so the client stays cheap while the
server carries thousands. Above `CONNECTIONS_PER_SOURCE` connections the
client binds its sockets to 127.0.0.1, .2, ... in turn: one source address
has only ~28,000 ephemeral ports to connect from.
"""
from __future__ import annotations

import contextlib
import errno
import math
import os
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from genloop.demos.measure.children import Running
from genloop.demos.measure.procfs import memory, threads
from genloop.demos.measure.wire import answer_complete, request

#: Connects in flight at once: a flood overflows the SYN and accept queues, and
#: every dropped SYN costs a one-second retransmit.
CONNECT_WINDOW = 512
#: Connections per source address: well inside the default 32768-60999 ephemeral range.
CONNECTIONS_PER_SOURCE = 20_000
#: Seconds allowed for connecting, and again for the answers.
PHASE_TIMEOUT = 120.0
#: Seconds per epoll.poll, so deadlines are noticed.
POLL_INTERVAL = 0.1
#: Bytes per recv of an answer (a hello answer is under a hundred).
ANSWER_SIZE = 4096
REQUEST = request()


@dataclass
class Held:
    """The figures of one style holding ``connections``: how many connected and were answered, how fast,
    the server's memory (PSS of its process tree) before and with all of them open, and its threads."""

    style: str
    connections: int
    connected: int
    answered: int
    connect_seconds: float
    answer_seconds: float
    memory_before: int    # bytes
    memory_after: int
    threads: int

    @property
    def bytes_per_connection(self) -> float:
        return (self.memory_after - self.memory_before) / max(1, self.connected)

    def summary(self) -> str:
        return (f"{self.style}: {self.answered:,} of {self.connections:,} connections answered "
                f"({self.connected:,} connected in {self.connect_seconds:.2f} s, answers in "
                f"{self.answer_seconds:.2f} s); server memory {self.memory_before / 2**20:.1f} -> "
                f"{self.memory_after / 2**20:.1f} MiB, {self.bytes_per_connection / 1024:.1f} KiB per "
                f"connection; {self.threads:,} threads")

    def figures(self) -> dict:
        """The fields and ``bytes_per_connection``, for JSON."""
        return {**asdict(self), "bytes_per_connection": self.bytes_per_connection}


@contextlib.contextmanager
def hold(server: Running, connections: int) -> Iterator[Held]:
    """Open ``connections`` to ``server``, ask once on each; yields the `Held` figures while they stay open."""
    before = memory(server.pid)
    started = time.perf_counter()
    socks = connect_all(server.port, connections)
    try:
        connected = time.perf_counter()
        answered = request_all(socks)
        done = time.perf_counter()
        yield Held(server.name, connections, len(socks), answered, connected - started, done - connected,
                   before, memory(server.pid), threads(server.pid))
    finally:
        for sock in socks:
            sock.close()


def connect_all(port: int, n: int) -> list[socket.socket]:
    """Open up to ``n`` connections, at most `CONNECT_WINDOW` in progress at a time."""
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
                    data = by_fd[fd].recv(ANSWER_SIZE)
                except OSError:
                    data = b""
                buffer = buffers[fd]
                buffer += data
                if not data or answer_complete(buffer):
                    answered += bool(data) and buffer.startswith(b"HTTP/1.1 200 ")
                    del buffers[fd]
                    epoll.unregister(fd)
    return answered
