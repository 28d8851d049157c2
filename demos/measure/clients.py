"""The load generators the benches drive: wrk, or `loadgen` on genloop; how each is started and read.

A client runs pinned to `children.CLIENT_CPU`, one connection per
concurrency, for whole seconds (wrk counts seconds), and prints what it
measured: `parse` turns either's output into a `Sample`.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from genloop.demos.measure.children import CLIENT_CPU, pinned

CLIENTS = ("wrk", "genloop")
#: Seconds a client may run past its duration (connecting, reporting) before it counts as stuck.
CLIENT_GRACE = 30.0
#: The units wrk prints latencies in, in seconds.
TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass
class Sample:
    """One client run: requests/s, latency percentiles (seconds), errors, requests answered."""

    rps: float
    p50: float
    p99: float
    errors: int       # failed connections and non-2xx answers
    requests: int


def choose(client: str, mode: str = "http") -> str:
    """``"wrk"`` or ``"genloop"`` for ``client`` (``auto``: wrk when installed and ``mode`` is HTTP)."""
    if client == "auto":
        return "wrk" if mode == "http" and shutil.which("wrk") else "genloop"
    if client == "wrk" and (mode != "http" or shutil.which("wrk") is None):
        raise ValueError("wrk is not installed, or the mode is echo (wrk only speaks HTTP): use the genloop client")
    return client


def command(client: str, port: int, concurrency: int, duration: int, mode: str = "http",
            extra: Sequence[str] = (), scheme: str = "http") -> list[str]:
    """The command line of ``client`` loading 127.0.0.1:``port``; ``extra`` are its own options.

    ``scheme`` "https" is for wrk only (the load generator speaks plain TCP).
    """
    if client == "wrk":
        argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration}s", "--latency", *extra,
                f"{scheme}://127.0.0.1:{port}/"]
    else:
        argv = [sys.executable, "-m", "genloop.demos.measure.loadgen", "--port", str(port), "--mode", mode,
                "-c", str(concurrency), "-d", str(duration), "--json", *extra]
    return pinned(CLIENT_CPU, argv)


def parse(client: str, output: str) -> Sample:
    """What ``client`` printed, as a `Sample`."""
    return parse_wrk(output) if client == "wrk" else parse_loadgen(output)


def parse_wrk(output: str) -> Sample:
    def required(pattern: str) -> tuple[str, ...]:
        if found := re.search(pattern, output, re.M):
            return found.groups()
        raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{output}")

    def seconds(percent: str) -> float:
        value, unit = required(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m|h)\s*$")
        return float(value) * TIME_UNITS[unit]

    # Both lines appear only when their counts are not zero.
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    bad_status = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = sum(map(int, socket_errors.groups())) if socket_errors else 0
    return Sample(rps=float(required(r"Requests/sec:\s+([\d.]+)")[0]), p50=seconds("50"), p99=seconds("99"),
                  errors=errors + (int(bad_status[1]) if bad_status else 0),
                  requests=int(required(r"(\d+) requests in")[0]))


def parse_loadgen(output: str) -> Sample:
    result = json.loads(output)
    return Sample(rps=result["rps"], p50=result["p50"] or 0.0, p99=result["p99"] or 0.0, errors=result["errors"],
                  requests=result["requests"])
