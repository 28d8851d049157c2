"""Dispatchers: names for where a task runs (Kotlin's Dispatchers).

A ``Dispatcher`` is only a description (name, thread count). Each running
kernel turns the descriptions it meets into thread pools of its own, lazily,
and stops them when ``run`` returns, so dispatchers can be module globals
while nothing outlives a kernel.
"""
import os

CORES = os.cpu_count() or 1
#: Kotlin's Dispatchers.Default: one thread per core, at least two.
DEFAULT_THREADS = max(2, CORES)
#: Kotlin's Dispatchers.IO: 64 threads or the core count, whichever is larger.
IO_THREADS = max(64, CORES)


class Dispatcher:
    """A pool of worker threads that tasks can run on.

    ``threads`` is the pool size; ``elastic`` pools start threads only when
    work is waiting and retire idle ones (Dispatchers.IO).
    """

    kind = "pool"

    def __init__(self, name: str, threads: int = DEFAULT_THREADS, *, elastic: bool = False):
        if threads < 1:
            raise ValueError(f"a dispatcher needs at least one thread, got {threads}")
        self.name = name
        self.threads = threads
        self.elastic = elastic

    def limited(self, n: int) -> "Dispatcher":
        """A view running at most ``n`` of its tasks at once on this pool's threads."""
        return LimitedDispatcher(self, n)

    def __repr__(self):
        return f"Dispatcher({self.name!r}, threads={self.threads})"


class LimitedDispatcher(Dispatcher):
    """Kotlin's ``limitedParallelism``: shares the parent's threads, caps concurrency."""

    kind = "limited"

    def __init__(self, parent: Dispatcher, n: int):
        if n < 1:
            raise ValueError(f"limited() needs n >= 1, got {n}")
        if parent.kind == "main":
            raise ValueError("Main already runs one task at a time; limit another dispatcher")
        self.name = f"{parent.name}.limited({n})"
        self.parent = parent
        self.threads = n
        self.elastic = False

    def __repr__(self):
        return f"{self.parent!r}.limited({self.threads})"


class _MainDispatcher(Dispatcher):
    kind = "main"

    def __init__(self):
        self.name, self.threads, self.elastic = "Main", 1, False

    def __repr__(self):
        return "Dispatchers.Main"


class _UnconfinedDispatcher(Dispatcher):
    kind = "unconfined"

    def __init__(self):
        self.name, self.threads, self.elastic = "Unconfined", 0, False

    def limited(self, n):
        raise ValueError("Unconfined has no threads of its own to limit")

    def __repr__(self):
        return "Dispatchers.Unconfined"


class Dispatchers:
    """The standard dispatchers.

    - ``Main``: the thread that called ``run``; it also runs the poller and timers.
    - ``Default``: CPU work, max(2, cores) threads.
    - ``IO``: blocking calls, up to max(64, cores) threads, started on demand.
    - ``Unconfined``: a task resumes on whichever thread woke it.
    """

    Main = _MainDispatcher()
    Default = Dispatcher("Default", DEFAULT_THREADS)
    IO = Dispatcher("IO", IO_THREADS, elastic=True)
    Unconfined = _UnconfinedDispatcher()
