"""An HTTP load generator on genloop itself: the client of `genloop bench` when wrk is not installed.

    python -m genloop.demos.loadgen --port P [-c 100] [-d 5] [--paths FILE] [--json]

Opens `-c` keep-alive connections, each a task that sends a GET, reads the
whole answer, records the latency and goes again until the time is up; the
paths are taken in turn from `--paths` (one per line; default `/`). A
connection that fails, and an answer that is not 2xx, count as errors. The
JSON it prints has the fields of `bench.loadgen`'s, so the harness reads
either. In Python the client costs about what the server does: its figures
are lower bounds, comparable with each other, not with wrk's.
"""
import argparse
import json
import re
import sys
import time

from genloop.kernel import TaskGroup, Timeout, run, timeout_after
from genloop.net import open_connection

#: Seconds past the duration a connection may take to finish its last exchange.
GRACE = 5.0

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


class Tally:
    """What the connections measured: latencies (seconds) and errors."""

    def __init__(self):
        self.latencies = []
        self.errors = 0

    def result(self, seconds: float) -> dict:
        latencies = sorted(self.latencies)

        def percentile(q):
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None

        return {"requests": len(latencies), "errors": self.errors, "seconds": seconds,
                "rps": len(latencies) / seconds, "p50": percentile(0.50), "p99": percentile(0.99)}


def exchanges(host, port, requests, first, deadline, tally):
    """One connection: ask, read the answer, again, until ``deadline``."""
    clock = time.perf_counter
    stream = yield from open_connection(host, port)
    try:
        i = first
        while (start := clock()) < deadline:
            yield from stream.write_all(requests[i % len(requests)])
            i += 1
            head = yield from stream.readuntil(b"\r\n\r\n")
            length = _CONTENT_LENGTH.search(head)
            yield from stream.readexactly(int(length[1]) if length else 0)
            tally.latencies.append(clock() - start)
            if not head.startswith(b"HTTP/1.1 2"):
                tally.errors += 1
    finally:
        stream.close()


def connection(host, port, requests, first, deadline, tally, duration):
    try:
        yield from timeout_after(duration + GRACE, exchanges, host, port, requests, first, deadline, tally)
    except (OSError, EOFError, Timeout):
        tally.errors += 1


def generate(host: str, port: int, paths: list, connections: int, duration: float):
    """Drive the load; returns the result dict (a coroutine for ``kernel.run``)."""
    requests = [f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode() for path in paths]
    tally = Tally()
    start = time.perf_counter()
    group = TaskGroup()
    for n in range(connections):
        yield from group.spawn(connection, host, port, requests, n, start + duration, tally, duration)
    yield from group.join()
    return tally.result(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("-c", "--connections", type=int, default=100)
    parser.add_argument("-d", "--duration", type=float, default=5.0, help="seconds")
    parser.add_argument("--paths", help="file of paths to GET, one per line (default: /)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args()
    paths = ["/"]
    if args.paths:
        with open(args.paths) as f:
            paths = [line.strip() for line in f if line.strip()]
    result = run(generate, args.host, args.port, paths, args.connections, args.duration)
    if args.json:
        print(json.dumps(result))
    else:
        p50, p99 = ((result[k] or float("nan")) * 1e3 for k in ("p50", "p99"))
        print(f"{result['requests']} requests in {result['seconds']:.2f} s: {result['rps']:.0f}/s, "
              f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, {result['errors']} errors", file=sys.stdout)


if __name__ == "__main__":
    main()
