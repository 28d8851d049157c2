"""Thread per connection with blocking sockets: the accept loop starts a
thread that blocks in recv/sendall for its client."""

from __future__ import annotations

import socket
import threading

from bench.peers import cli
from bench.peers.work import BACKLOG, ProtocolError
from genloop.net.stream import READ_SIZE


def handle(new_session, conn: socket.socket) -> None:
    session = new_session()
    with conn:
        try:
            while session.keep_alive and (data := conn.recv(READ_SIZE)):
                conn.sendall(session.feed(data))
        except (OSError, *ProtocolError):
            pass


def main(args) -> None:
    with socket.create_server((args.host, args.port), backlog=BACKLOG) as listener:
        cli.announce(listener.getsockname()[1])
        while True:
            conn, _ = listener.accept()
            # asyncio, uvloop and trio all set TCP_NODELAY on their sockets: same here.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=handle, args=(args.session, conn), daemon=True).start()


if __name__ == "__main__":
    main(cli.parse_args(__doc__))
