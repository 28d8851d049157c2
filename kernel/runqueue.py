"""The run-queue interface, and the two queues that are views over others.

The scheduler core only ever calls ``push``; a driver decides which thread
steps what it pushed. ``kernel.pools`` gives the threaded driver's queues
(real threads behind them), ``kernel.stepper`` its simulated ones; the views
here (``LimitedPool`` for ``d.limited(n)``, ``UnconfinedPool`` for
``Dispatchers.Unconfined``) have no workers of their own and serve both.
"""
import logging
import threading
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from .task import READY

log = logging.getLogger("genloop")


def end_turn(after):
    """Run the ``at_turn_end`` calls of a thread's finished turn, in order (the driver calls this)."""
    while after:
        fn = after.popleft()
        try:
            fn()
        except Exception:
            log.exception("end-of-turn call %r failed", fn)


class RunQueue(Protocol):
    """What the core, the drivers, the monitor and the stepper use of a run queue."""

    name: str
    #: True for a view with a cap (``LimitedPool``): whoever steps one of its
    #: tasks calls ``release()`` after the step.
    limited: bool
    #: Bumped on every push (under the queue's lock): ``Kernel.workers_idle``
    #: compares the counts before and after its look, to catch a push it missed.
    pushes: int

    @property
    def workers(self) -> Sequence[str]:
        """The names of the workers that step this queue's tasks."""

    def push(self, task) -> None:
        """Queue ``task`` (state READY) for a step on one of this queue's workers."""

    def idle(self) -> bool:
        """Nothing queued and nothing being stepped."""

    def snapshot(self) -> list:
        """The queued tasks, in order (for the monitor and the stepper)."""


class UnconfinedPool:
    """``Dispatchers.Unconfined``: a task goes to the run queue of the thread that wakes it.

    A thread the kernel does not own (a plain thread setting an ``Event``)
    hands it to Main (``Kernel.here``): only the kernel's threads step tasks.
    """

    name = "Unconfined"
    limited = False
    pushes = 0
    workers = ()

    def __init__(self, here):
        self._here = here

    def push(self, task) -> None:
        self._here().push(task)

    def idle(self) -> bool:
        return True

    def snapshot(self) -> list:
        return []


class LimitedPool:
    """At most ``n`` tasks of this view in the parent queue at once (Kotlin's ``limitedParallelism``).

    The parent may itself be a view (``d.limited(4).limited(2)``): a task then
    holds a slot at every level, taken from the innermost out as it is pushed
    on, and ``release`` gives them back in the same order.
    """

    kind = "limited"
    limited = True

    def __init__(self, parent, n, name):
        self.parent = parent
        self.n = n
        self.name = name
        self.running = 0
        self.pending = deque()
        self.lock = threading.Lock()
        self.pushes = 0

    @property
    def workers(self):
        return self.parent.workers

    def push(self, task):
        with self.lock:
            self.pushes += 1
            if self.running >= self.n:
                task.state = READY
                self.pending.append(task)
                return
            self.running += 1
        self.parent.push(task)

    def release(self):
        """One of our tasks finished a step: pass its slot on, then the parent's."""
        with self.lock:
            task = self.pending.popleft() if self.pending else None
            if task is None:
                self.running -= 1
        if task is not None:
            self.parent.push(task)
        if self.parent.limited:
            self.parent.release()

    def idle(self) -> bool:
        with self.lock:
            return not self.pending and not self.running

    def snapshot(self):
        with self.lock:
            return list(self.pending)
