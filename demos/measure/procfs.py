"""What /proc says about a server's process tree, and `Peak`, which watches it while it is loaded.

A server may serve from children (nginx, a fork server, workers sharing a
port), so every figure covers the process and all its descendants.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable
from pathlib import Path

#: Seconds between two looks at a server's memory and threads while it is measured.
SAMPLE_EVERY = 0.1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            pids += [p for child in (task / "children").read_text().split() for p in tree(int(child))]
    return pids


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (man 5 proc: field 3 is [0])."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by ``pid``'s process tree, and by the children ``pid`` has
    reaped (a fork server's children end with their connections, before the tree is read).

    Unlike requests/s it hardly moves when other programs share the server's
    core, so it is the steadier measure of cost on a busy machine.
    """
    ticks = 0
    for member in tree(pid):
        with contextlib.suppress(FileNotFoundError):  # a child that just exited
            fields = _stat(member)
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    fields = _stat(pid)
    return (ticks + int(fields[13]) + int(fields[14])) / CLOCK_TICKS  # cutime, cstime


def _field(pid: int, name: str, status: str) -> int:
    """The first number of line ``name`` in /proc/PID/``status`` (0 when the process just went)."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for line in Path(f"/proc/{pid}/{status}").read_text().splitlines():
            if line.startswith(name):
                return int(line.split()[1])
    return 0


def memory(pid: int) -> int:
    """Bytes of memory of ``pid``'s process tree, each page shared by k processes counted 1/k (PSS).

    Summing RSS would count the pages a forked child shares with its parent
    once per child: a thousand children of a 40 MiB server would "use" 40 GiB.
    """
    return sum(_field(member, "Pss:", "smaps_rollup") for member in tree(pid)) * 1024


def threads(pid: int) -> int:
    """OS threads in ``pid``'s process tree (a forked child counts its one thread)."""
    return sum(_field(member, "Threads:", "status") for member in tree(pid))


class Peak:
    """Samples a process tree's memory and threads on a thread of its own; keeps the peaks.

    Also the CPU time ``pid`` (and ``others``: helper processes, like the search
    backends) spent while the block ran: ``cpu`` and ``others_cpu``, in seconds.
    """

    def __init__(self, pid: int, others: Iterable[int] = ()) -> None:
        self.pid, self.others = pid, list(others)
        self.memory = self.threads = 0
        self.cpu = self.others_cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-sampler", daemon=True)

    def _sample(self) -> None:
        while True:
            with contextlib.suppress(FileNotFoundError):   # the process tree changed under us
                self.memory = max(self.memory, memory(self.pid))
                self.threads = max(self.threads, threads(self.pid))
            if self._stop.wait(SAMPLE_EVERY):
                return

    def _cpu(self) -> tuple[float, float]:
        return cpu_seconds(self.pid), sum(map(cpu_seconds, self.others))

    def __enter__(self) -> Peak:
        self._start = self._cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        end = self._cpu()
        self.cpu, self.others_cpu = end[0] - self._start[0], end[1] - self._start[1]
