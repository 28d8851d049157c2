"""C10K: hold N keep-alive connections on one peer server and measure what each costs.

    python -m bench.c10k                                  # asyncio_streams, 10,000 connections
    python -m bench.c10k --style uvloop_protocol -n 2000 --json c10k.json

The server starts as in `bench.http_bench` (a style from `bench.servers`,
pinned to CPU 0). This process, pinned to CPU 1, holds the connections with
the c10k demo's client (`genloop.demos.measure.hold`): one epoll loop opens N
connections, sends one GET on every one and waits for every answer; the
server's memory (PSS of its process tree: nginx serves from a child) is read
before and while all N are still open. Reported: time to connect them all
(the kernel completes the handshakes; the server may still be accepting),
time until all answered, how many were answered, memory before and after,
and (after - before) / connected bytes per connection.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from bench import servers
from genloop.demos.measure.children import CLIENT_CPU, FD_MARGIN, raise_nofile
from genloop.demos.measure.hold import Held, hold


def run(style: str, n: int) -> Held:
    raise_nofile(n + FD_MARGIN)  # inherited by the server
    os.sched_setaffinity(0, {CLIENT_CPU})
    with servers.started(style) as server, hold(server, n) as held:
        return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--style", choices=servers.STYLES, default=servers.BASELINE)
    parser.add_argument("-n", "--connections", type=int, default=10_000)
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    args = parser.parse_args()
    held = run(args.style, args.connections)
    print(held.summary())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(held.figures(), f, indent=2)
    sys.exit(0 if held.answered == held.connections else 1)


if __name__ == "__main__":
    main()
