"""Reactor + worker pool: the event loop does the I/O, threads do the work.

`demos.event_loop` answers requests on the loop thread, so one slow request
stalls every client. Here the loop thread only accepts, reads, frames and
writes; each complete request goes to a `ThreadPoolExecutor`. A finished
worker cannot touch the sockets (they belong to the loop), so it hands the
connection back through a queue and wakes the loop with an eventfd registered
in the same epoll set. The loop then moves replies to the output buffer in
request order: a reply waits until every earlier one on its connection is done.

This is the shape of Netty, Tomcat's NIO connector and Node's libuv thread
pool. The limits: every request pays two thread hand-offs; workers block, so
the pool size caps how much blocking work runs at once; and the flow of one
request is now split across two threads and a queue, which is hard to read,
trace and cancel.

Run it: `python -m genloop.demos.reactor [port] [http|echo]`. See `demos.bare` for the
`serve` contract; the extra option `workers` sizes the pool.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

from genloop.demos import bare
from genloop.demos.event_loop import IN, Connection, EventLoop
from genloop.demos.stage import Stage

DEFAULT_WORKERS = 4  # a small pool: enough to overlap blocking work, few switches
MAX_IN_FLIGHT = 1024  # requests per connection in the pool before it is not read any more


def serve(
    host: str,
    port: int,
    *,
    mode: str = "http",
    ready: threading.Event | None = None,
    stop: threading.Event | None = None,
    workers: int = DEFAULT_WORKERS,
    stage: Stage | None = None,
) -> None:
    protocol = bare.get_mode(mode)
    with bare.listen(host, port) as listener, Reactor(listener, protocol, workers, stage) as reactor:
        bare.announce(ready, listener)
        reactor.run(stop or threading.Event())


class Reactor(EventLoop):
    style = "reactor"

    def __init__(self, listener: socket.socket, protocol: bare.Mode, workers: int, stage: Stage | None = None) -> None:
        super().__init__(listener, protocol, stage)
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="reactor-worker")
        self.pending: dict[Connection, deque[Future]] = {}  # replies in the works, in request order
        self.replied: queue.SimpleQueue[Connection] = queue.SimpleQueue()  # filled by workers
        self.wakeup = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.watch(self.wakeup, IN, self.on_wakeup)

    def __exit__(self, *exc_info) -> None:
        # Workers first: their callbacks write to the eventfd, so it closes last.
        self.pool.shutdown(wait=True, cancel_futures=True)
        super().__exit__(*exc_info)
        os.close(self.wakeup)

    def answer(self, conn: Connection, requests: list) -> None:
        futures = self.pending.setdefault(conn, deque())
        reply = partial(self.told_reply, conn.sock.fileno()) if conn.told else self.protocol.reply
        for request in requests:
            future = self.pool.submit(reply, request)
            future.add_done_callback(partial(self.on_replied, conn))
            futures.append(future)

    def told_reply(self, fd: int, request) -> bytes:
        """``protocol.reply`` on a worker, saying which (for a connection the demo tells about)."""
        self.stage(f"reactor: fd {fd}: the loop thread handed a request to {threading.current_thread().name}")
        return self.protocol.reply(request)

    def on_replied(self, conn: Connection, _future: Future) -> None:
        """Runs on the worker thread: hand the connection back to the loop."""
        self.replied.put(conn)
        os.eventfd_write(self.wakeup, 1)

    def on_wakeup(self, _events: int) -> None:
        # Read the eventfd before draining the queue: a worker that queues after
        # the drain has also written after the read, so the loop wakes again.
        os.eventfd_read(self.wakeup)
        while True:
            try:
                conn = self.replied.get_nowait()
            except queue.Empty:
                return
            futures = self.pending.get(conn)
            if futures is None:  # closed meanwhile, or collected on an earlier wake-up
                continue
            while futures and futures[0].done():
                conn.out += futures.popleft().result()
            if not futures:
                del self.pending[conn]
            if conn.out:
                self.write(conn)
            self.update(conn)

    def busy(self, conn: Connection) -> bool:
        return super().busy(conn) or conn in self.pending

    def can_read(self, conn: Connection) -> bool:
        return super().can_read(conn) and len(self.pending.get(conn, ())) < MAX_IN_FLIGHT

    def close(self, conn: Connection) -> None:
        super().close(conn)
        self.pending.pop(conn, None)


if __name__ == "__main__":
    bare.main(serve)
