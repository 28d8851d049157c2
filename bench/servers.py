"""The peer servers the checkout's benchmarks compare, and how one is started for a run.

A style is a command line that follows the `bench.peers` contract (`--port`,
`--mode`, then `READY <port>` on stdout). Servers run pinned to
`SERVER_CPU` and load generators to `CLIENT_CPU` (`genloop.demos.measure`);
only the `UNPINNED` styles, which need more than one core, share the client's.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from genloop.demos.measure.children import SERVER_CPU, Running, running

BASELINE = "asyncio_streams"  # the style every other row is compared with


def peer(name: str) -> list[str]:
    return [sys.executable, "-m", f"bench.peers.{name}"]


STYLES: dict[str, list[str]] = {
    "asyncio_streams": peer("asyncio_streams"),
    "asyncio_protocol": peer("asyncio_protocol"),
    "uvloop_protocol": peer("uvloop_protocol"),
    "trio_streams": peer("trio_streams"),
    "threads": peer("threads"),
    "genloop": peer("genloop_http"),
    "genloop_default": [*peer("genloop_http"), "--dispatcher", "default"],
    "genloop_2workers": [*peer("genloop_http"), "--workers", "2"],
    "nginx": [sys.executable, "-m", "bench.nginx"],
    "asyncio_https": peer("asyncio_https"),
    "genloop_https": [*peer("genloop_http"), "--tls"],
}
HTTPS = {"asyncio_https", "genloop_https"}  # styles that speak TLS (wrk is told https://)
HTTP_ONLY = {"nginx", *HTTPS}  # styles that cannot serve --mode echo
UNPINNED = {"genloop_2workers"}  # styles that need more than SERVER_CPU (they share CLIENT_CPU)


def styles_for(mode: str) -> list[str]:
    return [name for name in STYLES if mode == "http" or name not in HTTP_ONLY]


@contextmanager
def started(style: str, mode: str = "http") -> Iterator[Running]:
    """Start ``style`` pinned to SERVER_CPU (unless UNPINNED), wait for READY, stop it on exit."""
    cpu = None if style in UNPINNED else SERVER_CPU
    with running([(style, [*STYLES[style], "--port", "0", "--mode", mode])], cpu) as (server,):
        yield server
