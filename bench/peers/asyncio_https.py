"""asyncio's high-level API over TLS: asyncio_streams' handler behind
`asyncio.start_server(..., ssl=...)` (asyncio's sslproto, on ssl.MemoryBIO)."""

from __future__ import annotations

import asyncio
from functools import partial

from bench.peers import cli
from bench.peers.asyncio_streams import handle
from bench.peers.tls import server_context
from bench.peers.work import BACKLOG


async def main(args) -> None:
    server = await asyncio.start_server(partial(handle, args.session), args.host, args.port,
                                        backlog=BACKLOG, ssl=server_context())
    cli.announce(server.sockets[0].getsockname()[1])
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(cli.parse_args(__doc__)))
