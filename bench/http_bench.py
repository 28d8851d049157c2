"""HTTP (or echo) throughput and latency of each server style, side by side.

    python -m bench.http_bench                                  # every style, 100 and 1000 conns
    python -m bench.http_bench --styles asyncio_streams,nginx --duration 2 --rounds 1
    python -m bench.http_bench --mode echo --conns 100          # echo needs the genloop client
    python -m bench.http_bench --json results.json
    python -m bench.http_bench --interleave                     # rounds in turns, on a shared box

For each style: start the server pinned to CPU 0 (`bench.servers`), then for
each concurrency run the client pinned to CPU 1 `--rounds` times for
`--duration` seconds, and report the median of the rounds: requests/s, p50
and p99 latency, errors, the ratio of requests/s to asyncio_streams, and the
server's CPU time per request (its whole process tree, from /proc) with the
same ratio taken on it
(`--interleave` starts every server first and takes the rounds in turns). The
client is `wrk` (one thread, `--latency`) when installed, otherwise the
load generator on genloop (`genloop.demos.measure.loadgen`), whose numbers
are lower and not comparable with wrk's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass

from bench import servers
from genloop.demos.measure import clients
from genloop.demos.measure.children import FD_MARGIN, Running, raise_nofile
from genloop.demos.measure.procfs import cpu_seconds


@dataclass
class Sample(clients.Sample):
    cpu: float  # server CPU seconds (user + system, whole process tree) per request


@dataclass
class Row(Sample):
    style: str
    conns: int
    ratio: float | None  # rps / the baseline's rps at the same concurrency
    cpu_ratio: float | None  # the baseline's cpu per request / this cpu per request


def measure(client: str, server: Running, mode: str, conns: int, duration: int) -> Sample:
    if client != "wrk" and server.name in servers.HTTPS:
        raise RuntimeError(f"{server.name} speaks TLS: only wrk can load it")
    scheme = "https" if server.name in servers.HTTPS else "http"
    before = cpu_seconds(server.pid)
    output = subprocess.run(clients.command(client, server.port, conns, duration, mode, scheme=scheme),
                            capture_output=True, text=True, check=True, timeout=duration + clients.CLIENT_GRACE).stdout
    used = cpu_seconds(server.pid) - before
    sample = clients.parse(client, output)
    return Sample(**asdict(sample), cpu=used / max(1, sample.requests))


def median_row(style: str, conns: int, samples: list[Sample]) -> Row:
    row = Row(style=style, conns=conns, ratio=None, cpu_ratio=None,
              **{field: statistics.median(getattr(s, field) for s in samples)
                 for field in ("rps", "p50", "p99", "errors", "requests", "cpu")})
    print(f"  {style} @ {conns}: {row.rps:,.0f} req/s", file=sys.stderr, flush=True)
    return row


def bench_style(style: str, args) -> list[Row]:
    with servers.started(style, args.mode) as server:
        return [median_row(style, conns, [measure(args.client, server, args.mode, conns, args.duration)
                                          for _ in range(args.rounds)])
                for conns in args.conns]


def bench_interleaved(args) -> list[Row]:
    """Every server up at once; round r measures each style in turn, starting one further
    along each round, so a burst of load from elsewhere on a shared box hits all alike."""
    samples = {}
    with contextlib.ExitStack() as stack:
        running = {}
        for style in args.styles:
            try:
                running[style] = stack.enter_context(servers.started(style, args.mode))
            except RuntimeError as error:
                print(f"  {style}: skipped: {error}", file=sys.stderr)
        order = list(running)
        for r in range(args.rounds):
            for style in order[r % len(order):] + order[:r % len(order)]:
                for conns in args.conns:
                    samples.setdefault((style, conns), []).append(
                        measure(args.client, running[style], args.mode, conns, args.duration))
    return [median_row(style, conns, samples[style, conns]) for style in order for conns in args.conns]


def add_ratios(rows: list[Row]) -> None:
    baseline = {row.conns: row for row in rows if row.style == servers.BASELINE}
    for row in rows:
        if (base := baseline.get(row.conns)) is not None:
            row.ratio = row.rps / base.rps if base.rps else None
            row.cpu_ratio = base.cpu / row.cpu if row.cpu else None


def print_table(rows: list[Row]) -> None:
    """req/s and its ratio; then server CPU per request and the baseline's over it, which
    stays put when other programs share the server's core (req/s does not)."""
    print(f"{'style':<20} {'conns':>6} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'vs ' + servers.BASELINE:>20} {'cpu us/req':>11} {'cpu vs base':>12}")
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        cpu_ratio = f"{row.cpu_ratio:.2f}x" if row.cpu_ratio is not None else "-"
        print(f"{row.style:<20} {row.conns:>6} {row.rps:>10,.0f} {row.p50 * 1e3:>8.2f} "
              f"{row.p99 * 1e3:>8.2f} {row.errors:>7g} {ratio:>20} {row.cpu * 1e6:>11.2f} {cpu_ratio:>12}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--styles", help=f"comma-separated, from: {', '.join(servers.STYLES)} "
                                         "(default: all that serve --mode)")
    parser.add_argument("--conns", default="100,1000", help="comma-separated concurrencies")
    parser.add_argument("--duration", type=int, default=5, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per point; the median is shown")
    parser.add_argument("--mode", choices=("http", "echo"), default="http")
    parser.add_argument("--client", choices=("auto", *clients.CLIENTS), default="auto",
                        help="auto: wrk for http when installed, else the load generator on genloop")
    parser.add_argument("--interleave", action="store_true",
                        help="start every server at once and take the rounds in turns (shared boxes)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args()
    args.styles = args.styles.split(",") if args.styles else servers.styles_for(args.mode)
    if unknown := [s for s in args.styles if s not in servers.styles_for(args.mode)]:
        parser.error(f"unknown style(s) for --mode {args.mode}: {', '.join(unknown)}")
    args.conns = [int(c) for c in args.conns.split(",")]
    try:
        args.client = clients.choose(args.client, args.mode)
    except ValueError as e:
        parser.error(str(e))
    return args


def main() -> None:
    args = parse_args()
    raise_nofile(max(args.conns) + FD_MARGIN)
    if args.interleave:
        rows = bench_interleaved(args)
    else:
        rows = []
        for style in args.styles:
            try:
                rows += bench_style(style, args)
            except (RuntimeError, subprocess.SubprocessError) as error:
                print(f"  {style}: skipped: {error}", file=sys.stderr)
    add_ratios(rows)
    print(f"\n{args.mode}, client {args.client}, {args.duration:g} s x {args.rounds} rounds (median"
          f"{', interleaved' if args.interleave else ''})")
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"mode": args.mode, "client": args.client, "duration": args.duration,
                       "rounds": args.rounds, "python": sys.version.split()[0],
                       "rows": [asdict(row) for row in rows]}, f, indent=2)


if __name__ == "__main__":
    main()
