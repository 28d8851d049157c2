"""Process per connection: accept, fork, let the child talk to the client.

The oldest Unix server shape (inetd, early Apache). Each client gets a whole
process, so handler code is plain blocking code and a crash or a slow client
hurts nobody else. The limits: a fork costs a page-table copy per connection,
each child holds megabytes, sharing state between clients needs IPC, and the
parent must reap every child (`waitpid`) or they linger as zombies. A few
hundred clients are fine; ten thousand are not.

Run it: `python -m genloop.demos.fork_server [port] [http|echo]`. See `demos.bare` for
the `serve` contract.
"""

from __future__ import annotations

import os
import signal
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
    children: set[int] = set()
    with bare.listen(host, port) as listener:
        bare.announce(ready, listener)
        try:
            for conn in bare.accepted(listener, stop):
                reap(children)
                if conn is not None:
                    client = peer(conn) if stage is not None and stage.tell() else None
                    with conn:  # the child has its own copy; the parent's goes now
                        pid = fork_child(conn, listener, protocol)
                        children.add(pid)
                    if client:
                        stage(f"fork: {client} -> child process pid {pid} (the parent is {os.getpid()}); "
                              f"{len(children)} children alive")
        finally:
            for pid in children:
                os.kill(pid, signal.SIGTERM)
            for pid in children:
                os.waitpid(pid, 0)


def fork_child(conn: socket.socket, listener: socket.socket, protocol: bare.Mode) -> int:
    """Fork; the child serves `conn` and exits, the parent gets the child's pid."""
    pid = os.fork()
    if pid:
        return pid
    # Child. It must never return into the parent's code (in a test that would
    # be pytest running twice), hence os._exit in every case.
    status = 1
    try:
        # The forking thread is the child's main thread, so this is allowed; the
        # parent stops children with SIGTERM whatever handler it inherited.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        listener.close()
        bare.serve_connection(conn, protocol)
        status = 0
    finally:
        os._exit(status)


def reap(children: set[int]) -> None:
    """Collect exited children without blocking, so none stays a zombie."""
    for pid in list(children):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            children.discard(pid)


if __name__ == "__main__":
    bare.main(serve)
