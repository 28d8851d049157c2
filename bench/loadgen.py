"""A small pure-Python load generator: the fallback when wrk is missing, and
the only client for echo mode (wrk speaks only HTTP).

    python -m bench.loadgen --port P [--mode http|echo] [-c 100] [-d 5] [--json]

Opens `-c` keep-alive connections; each sends one request (HTTP: a GET;
echo: a 64-byte line), waits for the whole answer, records the latency and
goes again until the duration is over. It runs on one asyncio loop (uvloop
when installed), so on a fast server the client is the bottleneck: its
numbers are lower bounds, comparable with each other but not with wrk's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from dataclasses import asdict, dataclass

from bench.servers import raise_nofile

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
ECHO_MESSAGE = b"x" * 63 + b"\n"  # 64 bytes, newline-terminated so line-echo servers answer too
EXCHANGE_TIMEOUT = 2.0  # seconds without an answer before a connection counts as failed (wrk's default)
FD_MARGIN = 64  # files besides the connections: interpreter, loop, pipes

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


def content_length(head: bytes) -> int:
    """Body size announced by a response head (0 when there is none)."""
    found = _CONTENT_LENGTH.search(head)
    return int(found[1]) if found else 0


async def http_exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(content_length(head))


async def echo_exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(ECHO_MESSAGE)
    await reader.readexactly(len(ECHO_MESSAGE))


EXCHANGES = {"http": http_exchange, "echo": echo_exchange}


@dataclass
class Result:
    requests: int
    errors: int  # connections that failed (refused, reset, timed out, closed early)
    seconds: float
    rps: float
    p50: float  # seconds
    p99: float


async def connection(host: str, port: int, exchange, deadline: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (start := time.perf_counter()) < deadline:
            async with asyncio.timeout(EXCHANGE_TIMEOUT):
                await exchange(reader, writer)
            latencies.append(time.perf_counter() - start)
    finally:
        writer.close()


async def generate(host: str, port: int, mode: str, connections: int, duration: float) -> Result:
    latencies: list[float] = []
    start = time.perf_counter()
    outcomes = await asyncio.gather(
        *(connection(host, port, EXCHANGES[mode], start + duration, latencies) for _ in range(connections)),
        return_exceptions=True,
    )
    seconds = time.perf_counter() - start
    latencies.sort()

    def percentile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return Result(requests=len(latencies), errors=sum(isinstance(o, Exception) for o in outcomes),
                  seconds=seconds, rps=len(latencies) / seconds, p50=percentile(0.50), p99=percentile(0.99))


def run(host: str, port: int, mode: str = "http", connections: int = 100, duration: float = 5.0) -> Result:
    raise_nofile(connections + FD_MARGIN)
    try:
        import uvloop
    except ImportError:
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(generate(host, port, mode, connections, duration))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=sorted(EXCHANGES), default="http")
    parser.add_argument("-c", "--connections", type=int, default=100)
    parser.add_argument("-d", "--duration", type=float, default=5.0, help="seconds")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args()
    result = run(args.host, args.port, args.mode, args.connections, args.duration)
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        print(f"{result.requests} {args.mode} exchanges in {result.seconds:.2f} s: {result.rps:.0f}/s, "
              f"p50 {result.p50 * 1e3:.2f} ms, p99 {result.p99 * 1e3:.2f} ms, {result.errors} failed connections")


if __name__ == "__main__":
    main()
