"""genloop: the real ``net.serve_http`` with a hello app (http), or a ``serve_tcp``
handler writing back what it reads (echo); connection tasks on Main or on
Dispatchers.Default; ``--workers N`` forks N kernels sharing the port;
``--tls`` serves HTTPS (``ssl=``, genloop's ``net.tls`` on ssl.MemoryBIO).

The app is the coroutines demo's (``genloop.demos.coroutines.hello``): the
bytes of the other peers' ``bench.peers.work.HELLO``; serve_http parses each
request into a ``Request`` with httptools, which is at least the work the
others do.
"""

from __future__ import annotations

import argparse
import os
import socket
import threading

from bench.peers import cli
from bench.peers.tls import server_context
from bench.peers.work import BACKLOG
from genloop.demos.coroutines import hello
from genloop.kernel import Dispatchers
from genloop.net import run_workers, serve_http, serve_tcp
from genloop.net.stream import READ_SIZE

DISPATCHERS = {"main": None, "default": Dispatchers.Default}
#: C10K holds connections open while it opens thousands more; the other peers
#: never time a connection out, so this one waits long too.
IDLE_TIMEOUT = 600.0


def echo(stream):
    sock = stream.socket
    while data := (yield from sock.recv(READ_SIZE)):
        yield from sock.sendall(data)


def serve(args, ready_fd=None):
    dispatcher = DISPATCHERS[args.dispatcher]
    reuse_port = args.workers > 1
    ssl = server_context() if args.tls else None
    if args.mode == "http":
        server = yield from serve_http(hello, args.host, args.port, dispatcher=dispatcher, ssl=ssl,
                                       backlog=BACKLOG, reuse_port=reuse_port, idle_timeout=IDLE_TIMEOUT)
    else:
        server = yield from serve_tcp(echo, args.host, args.port, dispatcher=dispatcher,
                                      backlog=BACKLOG, reuse_port=reuse_port)
    if ready_fd is None:
        cli.announce(server.port)
    else:
        os.write(ready_fd, b".")
    yield from server.serve_forever()


def announce_when_all_listen(ready_r: int, workers: int, port: int) -> None:
    """The READY line once every worker listens, so none misses the first connections."""
    for _ in range(workers):
        os.read(ready_r, 1)
    cli.announce(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--mode", choices=("http", "echo"), default="http")
    parser.add_argument("--dispatcher", choices=sorted(DISPATCHERS), default="main")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a throw-away certificate")
    args = parser.parse_args()
    if args.workers == 1:
        run_workers(serve, args)
        return
    # Reserve the port (bound with SO_REUSEPORT, not listening, so it takes no
    # connections) so that every worker binds the same one.
    with socket.socket() as reserve:
        reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reserve.bind((args.host, args.port))
        args.port = reserve.getsockname()[1]
        ready_r, ready_w = os.pipe()
        threading.Thread(target=announce_when_all_listen, args=(ready_r, args.workers, args.port),
                         daemon=True).start()
        run_workers(serve, args, ready_w, workers=args.workers)


if __name__ == "__main__":
    main()
