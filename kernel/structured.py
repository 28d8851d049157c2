"""Structured concurrency: ``TaskGroup`` and ``gather``.

What a failure does (asyncio's TaskGroup and trio's nursery agree on it):
the first child to fail cancels its siblings and the group's body; children
spawned into a failed group are cancelled before they run; ``join`` raises
every failure together in an ``ExceptionGroup``, so ``except*`` catches them.
No failure is dropped: a group its body never joins hands its failures to the
body's own outcome, or logs them when nobody is left to see them.
"""
from __future__ import annotations

import logging
import threading
import traceback
from typing import TYPE_CHECKING, Any, TypeVar

from .awaitable import coroutine
from .errors import Cancelled
from .gentypes import Gen
from .traps import SPAWN, CoroutineFunction, current_task

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from .dispatchers import Dispatcher
    from .task import Task

T = TypeVar("T")

log = logging.getLogger("genloop")


class TaskGroup:
    """Children that live and die together (Kotlin's coroutineScope, trio's nursery).

    ``t = yield from group.spawn(fn, ...)`` starts a child; ``yield from
    group.join()`` waits for all of them. The group's *body* is the task that
    spawned its first child (normally the one that made it and joins it).
    The first child to fail cancels its siblings and, unless it is already in
    ``join``, the body; ``join`` then raises ``ExceptionGroup`` of every
    failure in the order they happened, even for a single one (see
    docs/kernel.md for why). A cancellation the group itself gave the body is
    taken back once ``join`` has raised the failures, as asyncio does, so
    code that catches them goes on normally. Cancelling the task in ``join``
    cancels the children and waits for them; ``Cancelled`` then goes on up,
    unless a child failed meanwhile: failures are never dropped.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._children = set()
        self._errors = []
        self._closed = False
        self._cancelling = False     # the group cancelled its children: their Cancelled is no failure
        self._body = None            # the task that spawned the first child
        self._body_gone = False      # it has ended (set under the lock, as it ends)
        self._body_cancelled = False  # the group cancelled its body (undone by join)
        self._joiner = None          # the task inside join(), if any

    @coroutine
    def spawn(self, fn: CoroutineFunction[T], *args: Any, dispatcher: Dispatcher | None = None,
              name: str | None = None) -> Gen[Task[T]]:
        """Start ``fn(*args)`` as a child of this group; returns its ``Task``."""
        if self._closed:
            raise RuntimeError("this TaskGroup was joined already; make a new one")
        return (yield (SPAWN, fn, args, dispatcher, name, self))

    # -- called by the kernel ------------------------------------------------
    def _adopt(self, task):
        """A child was created (not queued yet): a failed or cancelled group cancels it before it runs."""
        with self._lock:
            self._children.add(task)
            failed = self._cancelling
            if self._body is None and task.parent is not None:
                self._body = body = task.parent
                if body._owns is None:
                    body._owns = [self]
                else:
                    body._owns.append(self)
        if failed:
            task.cancel()

    def _failure(self, exc) -> bool:
        """Does a child that ended with ``exc`` fail the group?"""
        return exc is not None and not isinstance(exc, Cancelled)

    def _child_done(self, task):
        exc = task.exception
        with self._lock:
            self._children.discard(task)
            if self._cancelling and isinstance(exc, Cancelled) or not self._failure(exc):
                return
            self._errors.append(exc)
            first = len(self._errors) == 1
            siblings = list(self._children) if first else ()
            self._cancelling = True
            body = self._body
            unseen = self._joiner is None and (body is None or self._body_gone)
            cancel_body = (first and self._joiner is None and body is not None and not self._body_gone
                           and not body._cancel_pending and not body._cancelled)
            self._body_cancelled |= cancel_body
        for t in siblings:
            t.cancel()
        if cancel_body:
            body.cancel()
        if unseen:
            log.error("task #%d %r failed in a TaskGroup that nobody is joining and whose body has ended:\n%s",
                      task.id, task.name, "".join(traceback.format_exception(exc)))

    def _body_exit(self, body, exc):
        """The body ends (``exc``: its exception or None); returns the outcome it ends with.

        Failures of a group it never joined become its outcome, as if it had
        joined: ``ExceptionGroup`` of them (with its own error, if it raised
        one). A ``KeyboardInterrupt``/``SystemExit`` stays as it is and the
        failures are logged.
        """
        with self._lock:
            self._body_gone = True       # from now on a failure is logged: the body cannot take it
            if self._closed or not self._errors or self._joiner is not None:
                return exc
            errors, self._errors = self._errors, []
        if exc is None or isinstance(exc, (Exception, Cancelled)):
            own = [exc] if isinstance(exc, Exception) else []
            return self._group_error(errors + own)
        for e in errors:
            log.error("task #%d %r ended by %r without joining its TaskGroup, whose child failed:\n%s",
                      body.id, body.name, exc, "".join(traceback.format_exception(e)))
        return exc

    # -- the public rest -----------------------------------------------------
    def cancel(self) -> None:
        """Cancel every child still running, and any spawned from now on."""
        with self._lock:
            self._cancelling = True
            children = list(self._children)
        for t in children:
            t.cancel()

    def _any_child(self):
        with self._lock:
            return next(iter(self._children), None)

    @coroutine
    def join(self) -> Gen[None]:
        """Wait for every child; raise ``ExceptionGroup`` of their failures, if any."""
        errors = yield from self._wait()
        if errors:
            raise self._group_error(errors)

    @staticmethod
    def _group_error(errors):
        n = len(errors)
        return BaseExceptionGroup(f"{n} task{'s' if n > 1 else ''} of a TaskGroup failed", errors)

    def _wait(self):
        """Wait for every child; return the failures (raise ``Cancelled`` if cancelled and none failed)."""
        me = yield from current_task()
        with self._lock:
            self._joiner = me
        try:
            while (child := self._any_child()) is not None:
                yield from child.wait_done()
        except Cancelled:
            self.cancel()
            while (child := self._any_child()) is not None:
                yield from child.wait_done()
            errors = self._take_errors(me)
            if not errors:
                raise
            return errors
        finally:
            self._closed = True
            self._joiner = None
        return self._take_errors(me)

    def _take_errors(self, me):
        with self._lock:
            errors, self._errors = self._errors, []
            ours, self._body_cancelled = self._body_cancelled and me is self._body, False
        if ours:
            me._uncancel()    # the body's cancellation was the group's: its failures say why
        return errors


class _Gathering(TaskGroup):
    """gather's group: a child cancelled from outside fails it too (asyncio, Kotlin's awaitAll)."""

    def _failure(self, exc) -> bool:
        return exc is not None


@coroutine
def gather(*coros: Gen[Any] | Coroutine[Any, Any, Any]) -> Gen[list[Any]]:
    """Run coroutines (generators or ``async def`` ones) concurrently; return their results in order.

    The first failure cancels the rest and is raised itself (later ones are
    attached as notes), as ``asyncio.gather`` and Kotlin's ``awaitAll`` do. A
    child cancelled from outside is a failure: ``gather`` raises
    ``Cancelled`` rather than return a result it does not have.
    """
    group = _Gathering()
    tasks = []
    for c in coros:
        tasks.append((yield from group.spawn(c)))
    errors = yield from group._wait()
    if errors:
        first = errors[0]
        for other in errors[1:]:
            first.add_note(f"also failed meanwhile: {other!r}")
        raise first
    return [t.result for t in tasks]
