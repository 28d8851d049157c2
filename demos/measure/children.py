"""Servers in processes of their own: started, awaited until they listen, stopped.

A server under measure prints ``READY <port>`` on stdout once it listens (the
demos do with ``genloop demo run --peer``, the peers in bench/ by their
contract). Servers run pinned to `SERVER_CPU` and load generators to
`CLIENT_CPU`, so the two never fight over a core.
"""
from __future__ import annotations

import contextlib
import os
import re
import resource
import select
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

SERVER_CPU, CLIENT_CPU = 0, 1
#: Seconds for a server to print READY: an interpreter starting on a busy machine.
READY_TIMEOUT = 30.0
#: Seconds between SIGTERM and SIGKILL when servers are stopped.
STOP_TIMEOUT = 5.0
#: Files a process needs besides its connections (interpreter, event loop, pipes).
FD_MARGIN = 64
#: Bytes read at a time from a server's stdout while waiting for READY.
READ_CHUNK = 4096

_READY = re.compile(rb"^READY (\d+)\r?\n", re.MULTILINE)


@dataclass(frozen=True)
class Running:
    """A server that listens: its name, its port and its process id."""

    name: str
    port: int
    pid: int


def pinned(cpu: int | None, argv: Sequence[str]) -> list[str]:
    """``argv`` run on CPU ``cpu`` only (``taskset`` execs it: the pid stays the program's);
    unpinned where there is no ``taskset``."""
    if cpu is None or shutil.which("taskset") is None:
        return list(argv)
    return ["taskset", "-c", str(cpu), *argv]


def wait_ready(process: subprocess.Popen, name: str, timeout: float = READY_TIMEOUT) -> int:
    """The port of the ``READY <port>`` line ``process`` prints; lines before it are skipped.

    Reads the pipe's file descriptor itself: a buffered ``readline`` would take
    the READY line along with an earlier one, and ``select`` then waits for
    more that never comes.
    """
    deadline = time.monotonic() + timeout
    fd, seen = process.stdout.fileno(), b""
    while (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            if not (chunk := os.read(fd, READ_CHUNK)):
                raise RuntimeError(f"{name} exited (status {process.wait()}) before READY")
            seen += chunk
            if found := _READY.search(seen):
                return int(found[1])
    raise RuntimeError(f"{name} did not print READY within {timeout:g} s")


def stop(processes: Sequence[subprocess.Popen], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM to all at once (a demo stops as on Ctrl-C), then wait; SIGKILL for any still there."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@contextlib.contextmanager
def running(commands: Sequence[tuple[str, Sequence[str]]], cpu: int | None = None,
            quiet: bool = False) -> Iterator[list[Running]]:
    """Start every ``(name, argv)`` at once (pinned to ``cpu`` when given); yields their `Running`
    once all listen, and stops them when the block ends. ``quiet`` drops their stderr."""
    processes: list[subprocess.Popen] = []
    try:
        for _, argv in commands:
            processes.append(subprocess.Popen(pinned(cpu, argv), stdout=subprocess.PIPE, text=True,
                                              stderr=subprocess.DEVNULL if quiet else None))
        yield [Running(name, wait_ready(process, name), process.pid)
               for (name, _), process in zip(commands, processes)]
    finally:
        stop(processes)


def raise_nofile(needed: int) -> None:
    """Let this process (and the servers and clients it starts) open ``needed`` files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed <= soft:
        return
    try:  # above the hard limit this needs root (CAP_SYS_RESOURCE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(needed, hard)))
    except (ValueError, PermissionError):
        raise RuntimeError(f"need {needed} open files, but the hard limit is {hard}: raise it "
                           "(ulimit -Hn) or ask for fewer connections") from None
