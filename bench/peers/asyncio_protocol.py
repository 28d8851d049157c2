"""asyncio's low-level API: an asyncio.Protocol per connection, called back on
each read and writing to its transport without awaiting. `run` takes a loop
factory so uvloop_protocol runs this very code on uvloop."""

from __future__ import annotations

import asyncio

from bench.peers import cli
from bench.peers.work import BACKLOG, ProtocolError


class PeerProtocol(asyncio.Protocol):
    def __init__(self, new_session) -> None:
        self.session = new_session()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.transport.write(self.session.feed(data))
        except ProtocolError:
            self.transport.close()
            return
        if not self.session.keep_alive:
            self.transport.close()


async def main(args) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: PeerProtocol(args.session), args.host, args.port,
                                      backlog=BACKLOG)
    cli.announce(server.sockets[0].getsockname()[1])
    await server.serve_forever()


def run(args, loop_factory=None) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main(args))


if __name__ == "__main__":
    run(cli.parse_args(__doc__))
