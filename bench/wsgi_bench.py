"""A Flask app served by `genloop serve`, gunicorn (sync, gthread) and waitress, under wrk.

    python -m bench.wsgi_bench                                   # all servers, / and /block, 100 and 1000 conns
    python -m bench.wsgi_bench --servers genloop,gthread --paths / --duration 3 --rounds 1

Every server gets the same processes (`--workers`, 1 by default) and app
threads (`--threads`, 8): gunicorn's sync worker has one thread each, so it
runs `workers x threads` processes instead; waitress is one process. Every
server may hold 2,000 connections (gthread's `--worker-connections` and
waitress's `--connection-limit` are raised from 1,000 and 100). Servers
run pinned to CPU 0 and wrk (one thread, `--latency`) to CPU 1, as in
`bench.http_bench`. All servers are started at once and the rounds taken in
turns; each point is the median of `--rounds` runs: requests/s,
p50 and p99 latency, errors (socket errors and non-2xx), and the server's CPU
time per request (its whole process tree). wrk's timeout is raised to
`WRK_TIMEOUT` so the tail is measured rather than cut. Needs the `bench`
extra and wrk.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict

from bench.http_bench import Sample
from bench.micro import REPO
from genloop.demos.measure.children import (
    CLIENT_CPU,
    FD_MARGIN,
    READY_TIMEOUT,
    SERVER_CPU,
    STOP_TIMEOUT,
    Running,
    pinned,
    raise_nofile,
)
from genloop.demos.measure.clients import CLIENT_GRACE, parse_wrk
from genloop.demos.measure.procfs import cpu_seconds

APP = "bench.wsgi_app:app"
HOST = "127.0.0.1"
#: wrk's per-request timeout: its default of 2 s would count the queueing of 1,000
#: connections on 8 threads blocking 10 ms each (~1.3 s) as errors near the tail.
WRK_TIMEOUT = 10.0


def commands(workers: int, threads: int) -> dict[str, callable]:
    """name -> port -> argv of that server on 127.0.0.1:port."""
    bin_dir = f"{sys.prefix}/bin"
    return {
        "genloop": lambda port: [sys.executable, "-m", "genloop", "serve", APP, "--bind", f"{HOST}:{port}",
                                 "--workers", str(workers), "--threads", str(threads), "--log-level", "warning"],
        "gthread": lambda port: [f"{bin_dir}/gunicorn", "-k", "gthread", "-w", str(workers), "--threads", str(threads),
                                 "--worker-connections", "2000", "-b", f"{HOST}:{port}", "--log-level", "warning", APP],
        "sync": lambda port: [f"{bin_dir}/gunicorn", "-k", "sync", "-w", str(workers * threads),
                              "-b", f"{HOST}:{port}", "--log-level", "warning", APP],
        "waitress": lambda port: [f"{bin_dir}/waitress-serve", "--threads", str(threads), "--connection-limit", "2000",
                                  "--listen", f"{HOST}:{port}", APP],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(name: str, argv_for) -> Running:
    """Start the server pinned to SERVER_CPU, wait until it accepts, stop it with SIGTERM."""
    port = free_port()
    process = subprocess.Popen(pinned(SERVER_CPU, argv_for(port)), cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start listening") from None
                time.sleep(0.05)
        yield Running(name, port, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def measure(server: Running, path: str, conns: int, duration: float) -> Sample:
    argv = pinned(CLIENT_CPU, ["wrk", "-t1", f"-c{conns}", f"-d{duration:g}s", "--latency",
                               "--timeout", f"{WRK_TIMEOUT:g}s", f"http://{HOST}:{server.port}{path}"])
    before = cpu_seconds(server.pid)
    output = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=duration + CLIENT_GRACE).stdout
    sample = parse_wrk(output)
    return Sample(**asdict(sample), cpu=(cpu_seconds(server.pid) - before) / max(1, sample.requests))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="genloop,gthread,sync,waitress")
    parser.add_argument("--paths", default="/,/block")
    parser.add_argument("--conns", default="100,1000")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per point; the median is shown")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk (Debian package wrk)")
    conns = [int(c) for c in args.conns.split(",")]
    raise_nofile(max(conns) + FD_MARGIN)
    table = commands(args.workers, args.threads)
    names, paths = args.servers.split(","), args.paths.split(",")
    samples = {}
    with contextlib.ExitStack() as stack:
        # Every server up at once, the rounds taken in turns (one further along each
        # round), so a burst of load from elsewhere on a shared box hits all alike.
        running_now = {name: stack.enter_context(running(name, table[name])) for name in names}
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                for path in paths:
                    for c in conns:
                        samples.setdefault((name, path, c), []).append(measure(running_now[name], path, c, args.duration))
    print(f"{'server':<10} {'path':<7} {'conns':>6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'cpu us/req':>11}")
    for (name, path, c), runs in samples.items():
        med = {f: statistics.median(getattr(s, f) for s in runs) for f in ("rps", "p50", "p99", "errors", "cpu")}
        print(f"{name:<10} {path:<7} {c:>6} {med['rps']:>9,.0f} {med['p50'] * 1e3:>8.2f} "
              f"{med['p99'] * 1e3:>8.2f} {med['errors']:>7g} {med['cpu'] * 1e6:>11.1f}")

if __name__ == "__main__":
    main()
