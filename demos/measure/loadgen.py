"""The load generator on genloop itself: the client of the benches when wrk is not installed, and the only one for echo.

    python -m genloop.demos.measure.loadgen --port P [--mode http|echo] [-c 100] [-d 5] [--paths FILE] [--json]

Opens `-c` keep-alive connections, each a task that sends one request (HTTP:
a GET, the paths taken in turn from `--paths`, one per line, default `/`;
echo: a 64-byte line), reads the whole answer, records the latency and goes
again until the time is up. A connection that fails, and an HTTP answer that
is not 2xx, count as errors. In Python the client costs about what the
server does: its figures are lower bounds, comparable with each other, not
with wrk's.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from genloop.demos.measure.children import FD_MARGIN, raise_nofile
from genloop.demos.measure.wire import ECHO_MESSAGE, content_length, request
from genloop.kernel import Gen, TaskGroup, Timeout, run, timeout_after
from genloop.net import Stream, open_connection

#: Seconds past the duration a connection may take to finish its last exchange.
GRACE = 5.0
MODES = ("http", "echo")


class Tally:
    """What the connections measured: latencies (seconds) and errors."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0

    def result(self, seconds: float) -> dict:
        latencies = sorted(self.latencies)

        def percentile(q: float) -> float | None:
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None

        return {"requests": len(latencies), "errors": self.errors, "seconds": seconds,
                "rps": len(latencies) / seconds, "p50": percentile(0.50), "p99": percentile(0.99)}


def http_exchange(stream: Stream, message: bytes) -> Gen[bool]:
    """Send a GET, read the whole answer; whether it was a 2xx."""
    yield from stream.write_all(message)
    head = yield from stream.readuntil(b"\r\n\r\n")
    yield from stream.readexactly(content_length(head))
    return head.startswith(b"HTTP/1.1 2")


def echo_exchange(stream: Stream, message: bytes) -> Gen[bool]:
    """Send a line, read it back."""
    yield from stream.write_all(message)
    return (yield from stream.readexactly(len(message))) == message


Exchange = Callable[[Stream, bytes], Gen[bool]]
EXCHANGES: dict[str, Exchange] = {"http": http_exchange, "echo": echo_exchange}


def exchanges(host: str, port: int, exchange: Exchange, messages: list[bytes], first: int, deadline: float,
              tally: Tally) -> Gen[None]:
    """One connection: ask, read the answer, again, until ``deadline``."""
    clock = time.perf_counter
    stream = yield from open_connection(host, port)
    try:
        i = first
        while (start := clock()) < deadline:
            ok = yield from exchange(stream, messages[i % len(messages)])
            i += 1
            tally.latencies.append(clock() - start)
            tally.errors += not ok
    finally:
        stream.close()


def connection(host: str, port: int, exchange: Exchange, messages: list[bytes], first: int, deadline: float,
               tally: Tally, duration: float) -> Gen[None]:
    try:
        yield from timeout_after(duration + GRACE, exchanges, host, port, exchange, messages, first, deadline, tally)
    except (OSError, EOFError, Timeout):
        tally.errors += 1


def generate(host: str, port: int, paths: list[str], connections: int, duration: float,
             mode: str = "http") -> Gen[dict]:
    """Drive the load; returns the result dict (a coroutine for ``run``)."""
    messages = [request(path, f"{host}:{port}") for path in paths] if mode == "http" else [ECHO_MESSAGE]
    tally = Tally()
    start = time.perf_counter()
    group = TaskGroup()
    for n in range(connections):
        yield from group.spawn(connection, host, port, EXCHANGES[mode], messages, n, start + duration, tally,
                               duration)
    yield from group.join()
    return tally.result(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=MODES, default="http")
    parser.add_argument("-c", "--connections", type=int, default=100)
    parser.add_argument("-d", "--duration", type=float, default=5.0, help="seconds")
    parser.add_argument("--paths", help="file of paths to GET, one per line (default: /)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args()
    paths = ["/"]
    if args.paths:
        with open(args.paths) as f:
            paths = [line.strip() for line in f if line.strip()]
    raise_nofile(args.connections + FD_MARGIN)
    result = run(generate, args.host, args.port, paths, args.connections, args.duration, args.mode)
    if args.json:
        print(json.dumps(result))
    else:
        p50, p99 = ((result[k] or float("nan")) * 1e3 for k in ("p50", "p99"))
        print(f"{result['requests']} {args.mode} exchanges in {result['seconds']:.2f} s: {result['rps']:.0f}/s, "
              f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, {result['errors']} errors")


if __name__ == "__main__":
    main()
