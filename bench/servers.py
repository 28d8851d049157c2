"""The server styles the benchmarks compare, and how one is started for a run.

A style is a command line that follows the `bench.peers` contract (`--port`,
`--mode`, then `READY <port>` on stdout). Servers run pinned to `SERVER_CPU`
and load generators to `CLIENT_CPU`, so the two never fight over a core;
only the `UNPINNED` styles, which need more than one core, share the client's.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVER_CPU, CLIENT_CPU = 0, 1
READY_TIMEOUT = 30.0  # seconds for a server to print READY: interpreter start on a busy box
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL
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


@dataclass(frozen=True)
class Server:
    style: str
    port: int
    pid: int


@contextmanager
def running(style: str, mode: str = "http") -> Iterator[Server]:
    """Start `style` pinned to SERVER_CPU (unless UNPINNED), wait for READY, stop it on exit."""
    pin = [] if style in UNPINNED else ["taskset", "-c", str(SERVER_CPU)]
    argv = [*pin, *STYLES[style], "--port", "0", "--mode", mode]
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        yield Server(style, wait_ready(process, style), process.pid)
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def wait_ready(process: subprocess.Popen, style: str) -> int:
    deadline = time.monotonic() + READY_TIMEOUT
    while (left := deadline - time.monotonic()) > 0:
        if select.select([process.stdout], [], [], left)[0]:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"{style} exited (status {process.wait()}) before READY")
            if line.startswith("READY "):
                return int(line.split()[1])
    raise RuntimeError(f"{style} did not print READY within {READY_TIMEOUT} s")


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants (nginx and the worker styles serve from children)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            pids += [p for child in (task / "children").read_text().split() for p in tree(int(child))]
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by `pid`'s process tree, from /proc/PID/stat.

    Unlike requests/s it hardly moves when other programs share the server's
    core, so it is the steadier measure of cost on a busy machine.
    """
    total = 0
    for member in tree(pid):
        with contextlib.suppress(FileNotFoundError):  # a child that just exited
            fields = Path(f"/proc/{member}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (man 5 proc)
    return total / os.sysconf("SC_CLK_TCK")


def raise_nofile(needed: int) -> None:
    """Let this process (and the servers and clients it starts) open `needed` files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed <= soft:
        return
    try:  # above the hard limit this needs root (CAP_SYS_RESOURCE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(needed, hard)))
    except (ValueError, PermissionError):
        raise SystemExit(f"need {needed} open files, but the hard limit is {hard}: raise it "
                         f"(ulimit -Hn) or ask for fewer connections") from None
