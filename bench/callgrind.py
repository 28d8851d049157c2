"""Instructions per operation, counted by callgrind: genloop vs asyncio and uvloop.

    python -m bench.callgrind                              # every path, every library
    python -m bench.callgrind --paths spawn_join,http      # some paths
    python -m bench.callgrind --libs genloop --json cg.json

Seconds on a shared two-core machine swing by 10-30 %; the instructions a
process executes do not: callgrind counts them, and the same binary with the
same input gives the same count whatever else the machine is doing. Each
path runs at two sizes, each in a fresh process under
``valgrind --tool=callgrind``; the figure is the difference of the two totals
divided by the difference of the operations done, so interpreter start,
imports, loop creation and shutdown cancel out.

Paths (the same work on every side; the kernel ones are ``bench.micro``'s):

  spawn_join     spawn a task that does nothing and join it       per task
  queue          one message handed over through a Queue          per hand-over
  sleeper        a task sleeping a random 0-1 s                   per task
  checkpoint     one bare checkpoint (asyncio: sleep(0))          per checkpoint
  http           a keep-alive HTTP hello request, waves over 10   per request
                 connections
                 (server measured; genloop is serve_http, asyncio streams
                 and Protocol and uvloop Protocol are bench.peers' servers)
  rpc_server     an rpc call, 1,000 callers on one connection     per call
                 (server measured; the load comes from the uvloop client)
  rpc_client     the same, client measured (against the uvloop server)
  rpc_client_1   the same with one caller

The sleeper sleeps on the wall clock (a random 0-1 s): how many timers
each poll finds due follows the speed of the run, so its count moves by a
few thousand from run to run on every side; it is measured three times and
the median shown.

genloop's micro paths run with its slow-step watchdog off (``bench.micro``'s
``WATCHDOG`` says why): the count is then the same from run to run.

Operations are counted exactly where the work is counted (tasks, messages,
requests sent); for the rpc paths, where the load runs for a duration, the
client reports the calls it completed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from bench.micro import CHECKPOINTS_PER_TASK, REPO, sizes
from genloop.demos.measure.children import wait_ready

HOST = "127.0.0.1"
LIBS = ("genloop", "asyncio", "uvloop")
#: path -> {lib: what to run}; a lib missing from a path has no such server.
HTTP_PEERS = {"genloop": "genloop_http", "asyncio": "asyncio_streams", "asyncio_protocol": "asyncio_protocol",
              "uvloop": "uvloop_protocol"}
RPC_SERVERS = {"genloop": ["-m", "bench.rpc_bench", "serve", "--port", "0"],
               "asyncio": ["-m", "bench.rpc_asyncio", "--port", "0"],
               "uvloop": ["-m", "bench.rpc_asyncio", "--port", "0", "--uvloop"]}
MICRO = {"spawn_join": "spawn_join", "queue": "queue_pingpong", "sleeper": "sleepers", "checkpoint": "checkpoints"}
PATHS = (*MICRO, "http", "rpc_server", "rpc_client", "rpc_client_1")
#: The two sizes of each path: micro scales, HTTP requests, rpc load seconds.
MICRO_SCALES = (0.02, 0.04)
HTTP_REQUESTS = (2_000, 4_000)
HTTP_CONNECTIONS = 10
RPC_SECONDS = (2.0, 4.0)
RPC_CALLERS = {"rpc_server": 1000, "rpc_client": 1000, "rpc_client_1": 1}
HELLO = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.I)
CHILD_TIMEOUT = 600.0
#: Paths whose count follows the wall clock, measured this many times (the median is shown).
WALL_CLOCK = ("sleeper",)
WALL_CLOCK_ROUNDS = 3
#: Seconds for a server under callgrind (some 50x slower) to print READY.
READY_TIMEOUT = 300.0


def valgrind(out: str) -> list[str]:
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "-q", sys.executable]


def total(out: str) -> int:
    """The instruction total of one callgrind output file."""
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise ValueError(f"{out}: no instruction total")


def default_sigint() -> None:
    """A child started from a background job inherits an ignored SIGINT, and Python then never raises Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def env() -> dict:
    e = dict(os.environ, PYTHONHASHSEED="0")
    e.pop("PYTHONASYNCIODEBUG", None)
    e.pop("PYTHONDEVMODE", None)
    return e


# -- one measured process per size --------------------------------------------

def micro(lib: str, path: str, size_index: int, out: str) -> int:
    bench, scale = MICRO[path], MICRO_SCALES[size_index]
    subprocess.run([*valgrind(out), "-m", "bench.micro", "--one", lib, bench, "--scale", repr(scale), "--no-watchdog"],
                   cwd=REPO, env=env(), check=True, capture_output=True, timeout=CHILD_TIMEOUT)
    n = sizes(scale)[bench]
    return n * CHECKPOINTS_PER_TASK if bench == "checkpoints" else n


def http(lib: str, size_index: int, out: str) -> int:
    requests = HTTP_REQUESTS[size_index]
    server = subprocess.Popen([*valgrind(out), "-m", f"bench.peers.{HTTP_PEERS[lib]}", "--port", "0"],
                              cwd=REPO, env=env(), stdout=subprocess.PIPE, text=True,
                              preexec_fn=default_sigint)
    try:
        drive_http(wait_ready(server, lib, READY_TIMEOUT), requests)
    finally:
        stop(server)
    return requests


def drive_http(port: int, requests: int) -> None:
    """Send ``requests`` keep-alive hellos in waves: one on each of ``HTTP_CONNECTIONS``, then read every answer.

    The client is far faster than a server under callgrind, so a wave has
    arrived whole before the server looks: each poll finds every connection
    ready, as under load, and the count repeats from run to run.
    """
    conns = [socket.create_connection((HOST, port)) for _ in range(HTTP_CONNECTIONS)]
    try:
        for _ in range(requests // len(conns)):
            for conn in conns:
                conn.sendall(HELLO)
            for conn in conns:
                read_response(conn)
    finally:
        for conn in conns:
            conn.close()


def read_response(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(CONTENT_LENGTH.search(head).group(1))
    while len(body) < length:
        body += conn.recv(65536)


def rpc(lib: str, path: str, size_index: int, out: str) -> int:
    """Either end of one rpc connection under callgrind; returns the calls completed."""
    seconds, callers = RPC_SECONDS[size_index], RPC_CALLERS[path]
    measured_server = path == "rpc_server"
    server_argv = [*valgrind(out), *RPC_SERVERS[lib]] if measured_server else [sys.executable, *RPC_SERVERS["uvloop"]]
    server = subprocess.Popen(server_argv, cwd=REPO, env=env(), stdout=subprocess.PIPE, text=True,
                              preexec_fn=default_sigint)
    try:
        port = wait_ready(server, lib, READY_TIMEOUT)
        load = ["-m", "bench.rpc_bench", "load", "uvloop" if measured_server else lib, "--port", str(port),
                "--callers", str(callers), "--duration", str(seconds), "--warmup", "0"]
        client = [sys.executable, *load] if measured_server else [*valgrind(out), *load]
        done = subprocess.run(client, cwd=REPO, env=env(), check=True, capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT)
    finally:
        stop(server)
    return json.loads(done.stdout.strip().splitlines()[-1])["total_calls"]


def stop(server: subprocess.Popen) -> None:
    """SIGINT: every server stops as on Ctrl-C, and valgrind writes its counts on the way out."""
    server.send_signal(signal.SIGINT)
    try:
        server.wait(CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    server.stdout.close()


def measure(lib: str, path: str) -> float | None:
    """Instructions per operation of ``path`` on ``lib`` (None: the lib has no such path)."""
    if path == "http" and lib not in HTTP_PEERS:
        return None
    counts = []
    with tempfile.TemporaryDirectory() as tmp:
        for size_index in (0, 1):
            out = os.path.join(tmp, f"callgrind.{size_index}")
            if path in MICRO:
                ops = micro(lib, path, size_index, out)
            elif path == "http":
                ops = http(lib, size_index, out)
            else:
                ops = rpc(lib, path, size_index, out)
            counts.append((ops, total(out)))
    (ops1, i1), (ops2, i2) = counts
    return (i2 - i1) / (ops2 - ops1)


def median_of(lib: str, path: str) -> float | None:
    """``measure``, or for a wall-clock path the median of ``WALL_CLOCK_ROUNDS`` measures."""
    rounds = WALL_CLOCK_ROUNDS if path in WALL_CLOCK else 1
    figures = [measure(lib, path) for _ in range(rounds)]
    return None if figures[0] is None else statistics.median(figures)


def table(results: dict, libs: list[str], paths: list[str]) -> str:
    lines = ["| path | " + " | ".join(libs) + " | genloop / asyncio |", "|---|" + "---:|" * (len(libs) + 1)]
    for path in paths:
        row = results[path]
        cells = [f"{row[lib] / 1000:.1f}k" if row.get(lib) is not None else "-" for lib in libs]
        ratio = (f"{row['genloop'] / row['asyncio']:.2f}x" if row.get("genloop") and row.get("asyncio") else "-")
        lines.append(f"| {path} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.callgrind", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", default=",".join(PATHS), help="comma list of " + ",".join(PATHS))
    parser.add_argument("--libs", default=",".join(LIBS),
                        help="comma list of genloop, asyncio, uvloop (http also knows asyncio_protocol)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args(argv)
    if not shutil.which("valgrind"):
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    paths, libs = args.paths.split(","), args.libs.split(",")
    if "http" in paths and "asyncio" in libs and "asyncio_protocol" not in libs:
        libs.insert(libs.index("asyncio") + 1, "asyncio_protocol")
    results = {}
    for path in paths:
        results[path] = {}
        for lib in libs:
            if lib == "asyncio_protocol" and path != "http":
                continue
            started = time.monotonic()
            results[path][lib] = figure = median_of(lib, path)
            if figure is not None:
                print(f"{path:13} {lib:17} {figure:10,.0f} instructions/op  ({time.monotonic() - started:.0f} s)",
                      file=sys.stderr, flush=True)
    print(table(results, libs, paths))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": sys.version, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
