"""One thread, every socket: a bare epoll event loop.

Instead of a thread blocked on each client, one thread asks the kernel which
sockets are ready (`epoll.poll`) and does, for each, only what will not block:

    while not stopped:
        for fd, events in epoll.poll(timeout):
            handlers[fd](events)      # accept / read + parse + answer / write

Sockets are non-blocking; each connection keeps an input framer and an output
buffer. A read that brings complete requests appends their replies to the
buffer and tries to send at once; what the kernel does not take waits for
EPOLLOUT. A client that does not read stops being read (EPOLLIN is dropped
above `HIGH_WATER` buffered bytes) so it cannot make the server buffer without
bound.

This is how nginx, Redis and libuv scale to many thousands of clients on one
thread with a few KiB each. The limits: every handler must return quickly (one
slow request stalls every client), and the logic of one client is smeared
across callbacks and explicit state (`Connection`) rather than written as a
sequence. `demos.reactor` moves the work off the loop; coroutines bring the
sequential code back.

Run it: `python -m genloop.demos.event_loop [port] [http|echo]`. See `demos.bare` for
the `serve` contract.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable
from functools import partial

from genloop.demos import bare
from genloop.demos.stage import Stage, peer

HIGH_WATER = 256 * 1024  # unsent bytes above which a connection is not read any more

IN, OUT, HANGUP = select.EPOLLIN, select.EPOLLOUT, select.EPOLLHUP | select.EPOLLERR


def serve(
    host: str,
    port: int,
    *,
    mode: str = "http",
    ready: threading.Event | None = None,
    stop: threading.Event | None = None,
    stage: Stage | None = None,
) -> None:
    protocol = bare.get_mode(mode)
    with bare.listen(host, port) as listener, EventLoop(listener, protocol, stage) as loop:
        bare.announce(ready, listener)
        loop.run(stop or threading.Event())


class Connection:
    __slots__ = ("sock", "framer", "out", "eof", "events", "told")

    def __init__(self, sock: socket.socket, framer) -> None:
        self.sock = sock
        self.framer = framer
        self.out = bytearray()  # replies not yet taken by the kernel
        self.eof = False  # the client sent FIN: answer what we have, then close
        self.events = IN  # what epoll watches for now
        self.told = False  # the demo tells about this connection (demos.stage)


class EventLoop:
    """The loop: a table fd -> handler(events), and the handlers."""

    def __init__(self, listener: socket.socket, protocol: bare.Mode, stage: Stage | None = None) -> None:
        self.listener = listener
        self.protocol = protocol
        self.stage = stage
        self.epoll = select.epoll()
        self.handlers: dict[int, Callable[[int], None]] = {}
        self.connections: dict[int, Connection] = {}
        listener.setblocking(False)
        self.watch(listener.fileno(), IN, self.on_accept)

    def __enter__(self) -> EventLoop:
        return self

    def __exit__(self, *exc_info) -> None:
        for conn in list(self.connections.values()):
            self.close(conn)
        self.epoll.close()

    def watch(self, fd: int, events: int, handler: Callable[[int], None]) -> None:
        self.epoll.register(fd, events)
        self.handlers[fd] = handler

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for fd, events in self.epoll.poll(bare.STOP_POLL):
                self.handlers[fd](events)

    def on_accept(self, _events: int) -> None:
        while True:  # drain the accept queue: one wake-up may stand for many clients
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            conn = Connection(sock, self.protocol.framer())
            self.connections[sock.fileno()] = conn
            self.watch(sock.fileno(), IN, partial(self.on_ready, conn))
            if self.stage is not None and self.stage.tell():
                conn.told = True
                self.stage(f"{self.style}: {peer(sock)} -> fd {sock.fileno()}, watched by epoll for EPOLLIN "
                           f"on the loop thread {threading.current_thread().name}")

    style = "event-loop"

    def on_ready(self, conn: Connection, events: int) -> None:
        if conn.told:
            self.stage(f"{self.style}: epoll.poll -> fd {conn.sock.fileno()} {event_names(events)}")
        if events & HANGUP:  # reset, or both directions shut: nobody to answer
            self.close(conn)
            return
        if events & IN:
            self.read(conn)
        if conn.out:  # try at once; wait for EPOLLOUT only if the kernel's buffer is full
            self.write(conn)
        self.update(conn)

    def read(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(bare.RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:  # reset
            data = b""
        if not data:
            conn.eof = True
        elif requests := conn.framer.feed(data):
            self.answer(conn, requests)

    def answer(self, conn: Connection, requests: list) -> None:
        conn.out += b"".join(map(self.protocol.reply, requests))

    def write(self, conn: Connection) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except BlockingIOError:
            return
        except OSError:  # the client is gone: drop what it will never read
            conn.out.clear()
            conn.eof = True
            return
        del conn.out[:sent]

    def busy(self, conn: Connection) -> bool:
        """Are replies still on their way to this client?"""
        return bool(conn.out)

    def can_read(self, conn: Connection) -> bool:
        return len(conn.out) < HIGH_WATER

    def update(self, conn: Connection) -> None:
        """Close a finished connection, or tell epoll what it is waiting for now."""
        done = conn.eof or conn.framer.finished
        if done and not self.busy(conn):
            self.close(conn)
            return
        events = (IN if not done and self.can_read(conn) else 0) | (OUT if conn.out else 0)
        if events != conn.events:
            self.epoll.modify(conn.sock, events)
            conn.events = events

    def close(self, conn: Connection) -> None:
        fd = conn.sock.fileno()
        self.epoll.unregister(fd)
        del self.handlers[fd], self.connections[fd]
        conn.sock.close()
        if conn.told:
            self.stage(f"{self.style}: fd {fd} closed and unregistered; {len(self.connections)} connections open")


def event_names(events: int) -> str:
    """An epoll event mask in words: ``EPOLLIN|EPOLLOUT``."""
    names = [name for name in ("EPOLLIN", "EPOLLOUT", "EPOLLHUP", "EPOLLERR", "EPOLLRDHUP")
             if events & getattr(select, name)]
    return "|".join(names) or hex(events)


if __name__ == "__main__":
    bare.main(serve)
