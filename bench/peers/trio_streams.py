"""trio: trio.serve_tcp, a task per connection using the SocketStream API
(receive_some / send_all); trio closes each stream when its handler returns."""

from __future__ import annotations

from functools import partial

import trio

from bench.peers import cli
from bench.peers.work import BACKLOG, ProtocolError
from genloop.net.stream import READ_SIZE


async def handle(new_session, stream: trio.SocketStream) -> None:
    session = new_session()
    try:
        while session.keep_alive and (data := await stream.receive_some(READ_SIZE)):
            await stream.send_all(session.feed(data))
    except (trio.BrokenResourceError, *ProtocolError):
        pass


async def main(args) -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, partial(handle, args.session),
                                                args.port, host=args.host, backlog=BACKLOG))
        cli.announce(listeners[0].socket.getsockname()[1])


if __name__ == "__main__":
    trio.run(main, cli.parse_args(__doc__))
