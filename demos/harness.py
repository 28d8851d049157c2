"""Demos in processes of their own, and what they cost: the ground the benches and `c10k` stand on.

A server measured from inside the process that loads it would share its
GIL and its memory figures with the client, so each demo under measure runs
as `genloop demo run --peer NAME ...` in a child process (pinned to a CPU
when asked) and prints `READY <port>`, the `bench.peers` contract. `Peak`
watches its memory, threads and CPU time while it is loaded. The reading of
that line, the CPU layout, the file limit, the process tree and the clients'
output come from the bench harness in `bench/` (source checkout only).
"""
import contextlib
import importlib
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Seconds between two looks at a server's memory and threads while it is measured.
SAMPLE_EVERY = 0.1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class HarnessMissing(RuntimeError):
    """bench/ is not importable: genloop is installed without its source tree."""


def bench(module: str):
    """``bench.<module>`` from the source checkout (bench/ is not part of the installed package)."""
    try:
        return importlib.import_module(f"bench.{module}")
    except ModuleNotFoundError as e:
        if e.name != "bench":
            raise
    if not (ROOT / "bench" / "__init__.py").is_file():
        raise HarnessMissing("this needs the bench harness (bench/) of the source checkout; "
                             "run it from a clone of the repository") from None
    sys.path.append(str(ROOT))
    return importlib.import_module(f"bench.{module}")


@dataclass(frozen=True)
class Launched:
    name: str
    port: int
    pid: int


def _spawn(name: str, options, cpu: int | None) -> subprocess.Popen:
    argv = [sys.executable, "-m", "genloop.demos.cli", "demo", "run", "--peer", name, *options]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _stop(processes: list, timeout: float) -> None:
    for process in processes:
        process.terminate()             # SIGTERM: a demo stops as on Ctrl-C; all at once, then wait
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


@contextlib.contextmanager
def launched_together(demos: list, cpu: int | None = None):
    """Start every ``(name, options)`` in ``demos`` at once, each in a child process; yields
    their ``Launched`` once all listen, and stops them when the block ends."""
    servers = bench("servers")
    processes = []
    try:
        for name, options in demos:
            processes.append(_spawn(name, options, cpu))
        yield [Launched(name, servers.wait_ready(process, name), process.pid)
               for (name, _), process in zip(demos, processes)]
    finally:
        _stop(processes, servers.STOP_TIMEOUT)


@contextlib.contextmanager
def launched(name: str, *options: str, cpu: int | None = None):
    """Run demo ``name`` with ``options`` in a child process until the block ends; yields ``Launched``."""
    with launched_together([(name, options)], cpu) as (server,):
        yield server


def memory(pid: int) -> int:
    """Bytes of memory of ``pid``'s process tree, each page shared by k processes counted 1/k (PSS).

    Summing RSS would count the pages a forked child shares with its parent
    once per child: a thousand children of a 40 MiB server would "use" 40 GiB.
    """
    total = 0
    for member in bench("servers").tree(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):   # a child that just exited
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


def threads(pid: int) -> int:
    """OS threads in ``pid``'s process tree (a forked child counts its one thread)."""
    total = 0
    for member in bench("servers").tree(pid):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("Threads:"):
                    total += int(line.split()[1])
    return total


def cpu_seconds(pid: int) -> float:
    """``bench.servers.cpu_seconds`` (the live process tree) plus the children ``pid`` has
    reaped: a fork server's children end with their connections, before the tree is read."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return bench("servers").cpu_seconds(pid) + (int(fields[13]) + int(fields[14])) / CLOCK_TICKS   # cutime, cstime


class Peak:
    """Samples a process tree's memory and threads on a thread of its own; keeps the peaks.

    Also the CPU time ``pid`` (and ``others``: helper processes, like the search
    backends) spent while the block ran: ``cpu`` and ``others_cpu``, in seconds.
    """

    def __init__(self, pid: int, others=()):
        self.pid, self.others = pid, list(others)
        self.memory = self.threads = 0
        self.cpu = self.others_cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-sampler", daemon=True)

    def _sample(self):
        while True:
            with contextlib.suppress(FileNotFoundError):   # the process tree changed under us
                self.memory = max(self.memory, memory(self.pid))
                self.threads = max(self.threads, threads(self.pid))
            if self._stop.wait(SAMPLE_EVERY):
                return

    def _cpu(self):
        return cpu_seconds(self.pid), sum(map(cpu_seconds, self.others))

    def __enter__(self) -> "Peak":
        self._start = self._cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        end = self._cpu()
        self.cpu, self.others_cpu = end[0] - self._start[0], end[1] - self._start[1]
