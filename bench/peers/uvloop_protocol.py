"""The asyncio_protocol peer, unchanged, on uvloop's libuv-based event loop."""

import uvloop

from bench.peers import asyncio_protocol, cli

if __name__ == "__main__":
    asyncio_protocol.run(cli.parse_args(__doc__), loop_factory=uvloop.new_event_loop)
