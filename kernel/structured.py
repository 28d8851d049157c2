"""Structured concurrency: ``TaskGroup`` and ``gather``."""
import threading

from .errors import Cancelled
from .traps import SPAWN


class TaskGroup:
    """Children that live and die together (Kotlin's coroutineScope, trio's nursery).

    ``t = yield from group.spawn(fn, ...)`` starts a child; ``yield from
    group.join()`` waits for all of them. The first child to fail cancels its
    siblings and ``join`` re-raises its exception (later failures are attached
    as notes). Cancelling the task in ``join`` cancels the children and waits
    for them before ``Cancelled`` goes on up.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._children = set()
        self._error = None
        self._others = []
        self._closed = False

    def spawn(self, fn, *args, dispatcher=None, name=None):
        """Start ``fn(*args)`` as a child of this group; returns its ``Task``."""
        if self._closed:
            raise RuntimeError("this TaskGroup was joined already; make a new one")
        return (yield (SPAWN, fn, args, dispatcher, name, self))

    def _adopt(self, task):
        with self._lock:
            self._children.add(task)

    def _child_done(self, task):
        exc = task.exception
        with self._lock:
            self._children.discard(task)
            failed = exc is not None and not isinstance(exc, Cancelled)
            if failed:
                if self._error is None:
                    self._error = exc
                    siblings = list(self._children)
                else:
                    self._others.append(exc)
                    siblings = ()
        if failed:
            for t in siblings:
                t.cancel()

    def cancel(self) -> None:
        """Cancel every child still running."""
        with self._lock:
            children = list(self._children)
        for t in children:
            t.cancel()

    def _any_child(self):
        with self._lock:
            return next(iter(self._children), None)

    def join(self):
        """Wait for every child; re-raise the first failure."""
        try:
            while (child := self._any_child()) is not None:
                yield from child.wait_done()
        except Cancelled:
            self.cancel()
            while (child := self._any_child()) is not None:
                yield from child.wait_done()
            raise
        finally:
            self._closed = True
        if self._error is not None:
            for other in self._others:
                self._error.add_note(f"also failed meanwhile: {other!r}")
            raise self._error


def gather(*coros):
    """Run generators concurrently; return their results in order.

    The first failure cancels the rest and is raised.
    """
    group = TaskGroup()
    tasks = []
    for c in coros:
        tasks.append((yield from group.spawn(c)))
    yield from group.join()
    return [t.result for t in tasks]
