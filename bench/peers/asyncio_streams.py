"""asyncio's high-level API: asyncio.start_server, a coroutine per connection
reading a StreamReader and writing (then draining) a StreamWriter."""

from __future__ import annotations

import asyncio
from functools import partial

from bench.peers import cli
from bench.peers.work import BACKLOG, ProtocolError
from genloop.net.stream import READ_SIZE


async def handle(new_session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    session = new_session()
    try:
        while session.keep_alive and (data := await reader.read(READ_SIZE)):
            writer.write(session.feed(data))
            await writer.drain()
    except (ConnectionError, *ProtocolError):
        pass
    finally:
        writer.close()


async def main(args) -> None:
    server = await asyncio.start_server(partial(handle, args.session), args.host, args.port,
                                        backlog=BACKLOG)
    cli.announce(server.sockets[0].getsockname()[1])
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(cli.parse_args(__doc__)))
