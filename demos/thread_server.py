"""Thread per connection: accept, start a thread, let it block on the client.

Threads are cheaper than processes and share memory, and the handler is still
plain blocking code, which is why this is the default of many servers. The
limits: each thread has its own stack (megabytes reserved, tens of KiB
touched) and costs the OS scheduler a context switch whenever it wakes; shared
state now needs locks; with the GIL only one thread runs Python at a time. It
serves thousands of mostly idle clients, with memory and switching climbing
with every one.

Run it: `python -m genloop.demos.thread_server [port] [http|echo]`. See `demos.bare`
for the `serve` contract.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from genloop.demos import bare
from genloop.demos.stage import Stage, peer


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
    stop = stop or threading.Event()
    # The accept loop owns every connection socket and closes it only after its
    # thread has ended: a thread never closes its own socket, so `stop` can
    # shut one down without racing a close (and a reused file descriptor).
    handlers: dict[threading.Thread, socket.socket] = {}
    with bare.listen(host, port) as listener:
        bare.announce(ready, listener)
        try:
            for conn in bare.accepted(listener, stop):
                reap(handlers)
                if conn is not None:
                    handler = threading.Thread(target=bare.serve_connection, args=(conn, protocol),
                                               name=f"conn-{conn.fileno()}", daemon=True)
                    handlers[handler] = conn
                    handler.start()
                    if stage is not None and stage.tell():
                        stage(f"threads: {peer(conn)} -> thread {handler.name} (native id {handler.native_id}); "
                              f"{sum(h.is_alive() for h in handlers)} connection threads alive")
        finally:
            for conn in handlers.values():
                with contextlib.suppress(OSError):  # the peer may be gone already
                    conn.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv/send
            for handler, conn in handlers.items():
                handler.join()
                conn.close()


def reap(handlers: dict[threading.Thread, socket.socket]) -> None:
    """Join the threads whose client has left and close their sockets."""
    for handler in [h for h in handlers if not h.is_alive()]:
        handler.join()
        handlers.pop(handler).close()


if __name__ == "__main__":
    bare.main(serve)
