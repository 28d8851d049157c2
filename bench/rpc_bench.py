"""rpc benchmark: calls per second and latency over ONE connection, genloop vs asyncio.

    python -m bench.rpc_bench                          # full run: 3 impls x 3 caller counts x 3 rounds
    python -m bench.rpc_bench --duration 1 --rounds 1  # quick look
    python -m bench.rpc_bench --json rpc.json

Each cell: a server process pinned to CPU 0 (``taskset -c 0``) and a client
process pinned to CPU 1, one connection between them, C caller coroutines
(tasks) on the client, each calling ``add(i, 1)`` in a loop and checking the
answer. The client measures for ``--duration`` seconds after ``--warmup``
seconds; every call that starts inside the window counts, timed from just
before the call to just after its answer. The same client code shape, the same
method, the same interpreter and gc settings on every side; a fresh pair of
processes per cell. Rounds are interleaved (round 1 of every cell, then round
2, ...) so drift of a shared machine hits every implementation alike; each
figure is the median over rounds.

Each cell also reports the CPU time per call of both processes (the server's
from /proc around the client's run, the client's own ``process_time``; both
over every call, warm-up included). Calls/s on a shared machine swing with
whatever else runs; CPU per call hardly moves, so it shows the cost of the
code even when the rate is noisy.

Implementations: ``genloop`` (rpc.Server + rpc.connect), ``asyncio`` and
``uvloop`` (``bench.rpc_asyncio``, the same protocol on asyncio / uvloop).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

from genloop.demos.measure.children import CLIENT_CPU, SERVER_CPU, pinned, stop, wait_ready
from genloop.demos.measure.machine import machine
from genloop.demos.measure.procfs import cpu_seconds

HOST = "127.0.0.1"
IMPLS = ("genloop", "asyncio", "uvloop")
BASELINE = "asyncio"
CALLERS = (1, 100, 1000)
DURATION = 5.0        # seconds measured per cell
WARMUP = 1.0          # seconds of calls before measuring (connection, caches, gc settle)
ROUNDS = 3
LOAD_TIMEOUT = 120.0  # seconds for a client process: a hung peer shows as an error, not a hung bench
METHOD = "add"
#: What each cell reports (the median over rounds of each).
FIGURES = ("rate", "p50_ms", "p99_ms", "server_cpu_us", "client_cpu_us")


# -- the measured client loop, one per implementation -------------------------

def genloop_load(port: int, callers: int, warmup: float, duration: float):
    from genloop import kernel, rpc

    def main():
        client = yield from rpc.connect(HOST, port)
        start = time.perf_counter() + warmup
        end = start + duration
        latencies = []

        def caller(i):
            call, clock, record = client.call, time.perf_counter, latencies.append
            calls = 0
            while (t0 := clock()) < end:
                if (yield from call(METHOD, i, 1)) != i + 1:
                    raise AssertionError("wrong answer")
                calls += 1
                if t0 >= start:
                    record(clock() - t0)
            return calls

        calls = yield from kernel.gather(*(caller(i) for i in range(callers)))
        client.close()
        return latencies, sum(calls)

    return kernel.run(main)


def asyncio_load(port: int, callers: int, warmup: float, duration: float, use_uvloop: bool = False):
    import asyncio

    from bench.rpc_asyncio import connect, loop_factory

    async def main():
        client = await connect(HOST, port)
        start = time.perf_counter() + warmup
        end = start + duration
        latencies = []

        async def caller(i):
            call, clock, record = client.call, time.perf_counter, latencies.append
            calls = 0
            while (t0 := clock()) < end:
                if (await call(METHOD, i, 1)) != i + 1:
                    raise AssertionError("wrong answer")
                calls += 1
                if t0 >= start:
                    record(clock() - t0)
            return calls

        calls = await asyncio.gather(*(caller(i) for i in range(callers)))
        client.close()
        return latencies, sum(calls)

    with asyncio.Runner(loop_factory=loop_factory(use_uvloop)) as runner:
        return runner.run(main())


LOADS = {
    "genloop": genloop_load,
    "asyncio": asyncio_load,
    "uvloop": lambda *a: asyncio_load(*a, use_uvloop=True),
}


def genloop_serve(port: int) -> None:
    from bench.rpc_asyncio import BENCH_METHODS, READY
    from genloop import kernel, rpc

    def main():
        server = rpc.Server()
        for name, fn in BENCH_METHODS.items():
            server.register(name, fn)
        tcp = yield from server.start(HOST, port)
        print(READY, tcp.port, flush=True)
        yield from tcp.serve_forever()

    kernel.run(main)


def server_argv(impl: str) -> list[str]:
    if impl == "genloop":
        return [sys.executable, "-m", "bench.rpc_bench", "serve", "--port", "0"]
    return [sys.executable, "-m", "bench.rpc_asyncio", "--port", "0", *(["--uvloop"] if impl == "uvloop" else [])]


# -- the harness ------------------------------------------------------------

def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")      # no call finished inside the window (a stalled machine)
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def run_cell(impl: str, callers: int, duration: float, warmup: float) -> dict:
    """One server process, one client process; returns rate, latencies and CPU per call."""
    server = subprocess.Popen(pinned(SERVER_CPU, server_argv(impl)), stdout=subprocess.PIPE, text=True)
    try:
        port = wait_ready(server, impl)
        load = [sys.executable, "-m", "bench.rpc_bench", "load", impl, "--port", str(port),
                "--callers", str(callers), "--duration", str(duration), "--warmup", str(warmup)]
        cpu_before = cpu_seconds(server.pid)     # taskset execs: the pid is the server's
        out = subprocess.run(pinned(CLIENT_CPU, load), capture_output=True, text=True,
                             timeout=LOAD_TIMEOUT, check=True).stdout
        server_cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        stop([server])
    result = json.loads(out)
    result["server_cpu_us"] = 1e6 * server_cpu / result.pop("total_calls")
    return result


def measure(impl: str, port: int, callers: int, duration: float, warmup: float) -> dict:
    """The client's side of a cell (in the pinned client process)."""
    cpu = time.process_time()
    latencies, total = LOADS[impl](port, callers, warmup, duration)
    cpu = time.process_time() - cpu
    latencies.sort()
    return {"calls": len(latencies), "rate": len(latencies) / duration, "total_calls": total,
            "p50_ms": 1e3 * percentile(latencies, 0.50), "p99_ms": 1e3 * percentile(latencies, 0.99),
            "client_cpu_us": 1e6 * cpu / total}


def summarise(rounds: list[dict]) -> dict:
    summary = {key: statistics.median(r[key] for r in rounds) for key in FIGURES}
    summary["best_rate"] = max(r["rate"] for r in rounds)   # the least disturbed round
    return summary


def table(cells: dict, impls, callers_list) -> str:
    lines = [f"| impl | callers | calls/s | vs {BASELINE} | best calls/s | p50 ms | p99 ms "
             "| server CPU µs/call | client CPU µs/call |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for callers in callers_list:
        base = cells.get((BASELINE, callers))
        for impl in impls:
            c = cells[(impl, callers)]
            ratio = f"{c['rate'] / base['rate']:.2f}x" if base else "-"
            lines.append(f"| {impl} | {callers:,} | {c['rate']:,.0f} | {ratio} | {c['best_rate']:,.0f} | {c['p50_ms']:.3f} | "
                         f"{c['p99_ms']:.3f} | {c['server_cpu_us']:.1f} | {c['client_cpu_us']:.1f} |")
    return "\n".join(lines)


def orchestrate(args) -> None:
    impls = args.impls.split(",")
    callers_list = [int(c) for c in args.callers.split(",")]
    rounds = {(i, c): [] for i in impls for c in callers_list}
    load_before = os.getloadavg()
    for r in range(args.rounds):
        for callers in callers_list:
            for impl in impls:
                result = run_cell(impl, callers, args.duration, args.warmup)
                rounds[(impl, callers)].append(result)
                print(f"round {r + 1}/{args.rounds} {impl:8} {callers:5} callers: "
                      f"{result['rate']:10,.0f} calls/s  p50 {result['p50_ms']:.3f} ms  "
                      f"p99 {result['p99_ms']:.3f} ms  CPU/call server {result['server_cpu_us']:.1f} µs "
                      f"client {result['client_cpu_us']:.1f} µs", file=sys.stderr, flush=True)
    cells = {key: summarise(rs) for key, rs in rounds.items()}
    print(table(cells, impls, callers_list))
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} (1 min)")
    if args.json:
        command = " ".join(["python -m bench.rpc_bench", *map(shlex.quote, sys.argv[1:])])
        report = {"machine": machine(), "loadavg_before": load_before, "command": command,
                  "duration": args.duration, "warmup": args.warmup, "rounds": args.rounds,
                  "cells": [{"impl": i, "callers": c, **cells[(i, c)], "rounds": rounds[(i, c)]}
                            for (i, c) in rounds]}
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--callers", default=",".join(map(str, CALLERS)))
    parser.add_argument("--duration", type=float, default=DURATION)
    parser.add_argument("--warmup", type=float, default=WARMUP)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--json", metavar="FILE", help="also write every round's figures here")
    sub = parser.add_subparsers(dest="role")
    serve = sub.add_parser("serve", help="(internal) the genloop server of one cell")
    serve.add_argument("--port", type=int, default=0)
    load = sub.add_parser("load", help="(internal) the client of one cell; prints JSON")
    load.add_argument("impl", choices=IMPLS)
    load.add_argument("--port", type=int, required=True)
    load.add_argument("--callers", type=int, required=True)
    load.add_argument("--duration", type=float, default=DURATION)
    load.add_argument("--warmup", type=float, default=WARMUP)
    args = parser.parse_args()
    if args.role == "serve":
        genloop_serve(args.port)
    elif args.role == "load":
        print(json.dumps(measure(args.impl, args.port, args.callers, args.duration, args.warmup)))
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
