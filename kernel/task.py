"""Task: one coroutine and its bookkeeping."""
import contextvars
import threading
from typing import Generic, TypeVar

from .awaitable import coroutine
from .errors import Cancelled
from .gentypes import Gen
from .traps import JOIN

T = TypeVar("T")

_copy = contextvars.Context.copy   # unbound: no method object per spawn

# Task states, as ``Task.state`` reports them.
NEW, READY, RUNNING, WAITING, DONE = "new", "ready", "running", "waiting", "done"


class Task(Generic[T]):
    """A coroutine the kernel steps; ``Task[T]`` is one whose coroutine returns ``T``.

    At any instant a task is in exactly one place: a run queue (READY or NEW),
    a wait structure (WAITING), or being stepped by one thread (RUNNING).

    ``_lock`` guards the wait state (``_abort``, ``_cancel_pending``) against a
    concurrent ``cancel()``; it is always taken first, before any structure's
    own lock, so the kernel's locks never form a cycle.

    The fields come in two groups. The public ones (``id``, ``name``,
    ``state``, ``dispatcher``, ``parent``, ``done``, ``result``,
    ``exception``, ``trap``, ``steps``, ``since``) are for reading; only
    ``kernel.core`` writes them. The underscored ones are the scheduler's
    own bookkeeping, written by ``kernel.core`` (and ``wake`` here, its
    inlined hot path) and by nothing else.
    """

    __slots__ = (
        # public, read-only outside the core
        "id", "_name", "coro", "state", "dispatcher", "kernel", "result", "exception", "done",
        "trap", "parent", "steps", "since", "context",
        # the core's: where the task runs and what it resumes with
        "_pool", "_value", "_exc",
        # the core's: the wait and cancellation state (under ``_lock``)
        "_lock", "_abort", "_cancel_pending", "_cancelled", "_waiting",
        # the core's: who learns of the end, and the group whose body this task is
        "_watchers", "_group", "_owns",
        "__weakref__",
    )

    def __init__(self, kernel, coro, name, dispatcher, pool, parent):
        self.id = 0
        self._name = name
        self.coro = coro
        self.state = NEW
        self.dispatcher = dispatcher
        self._pool = pool
        self.kernel = kernel
        self._value = None
        self._exc = None
        self._abort = None
        self._cancel_pending = False
        self._cancelled = False
        self._lock = threading.Lock()
        self._watchers = None
        self._group = None
        self._owns = None     # TaskGroups whose body this task is (see structured.TaskGroup)
        # Every step runs in the task's own Context: a copy of its spawner's (asyncio's rule).
        self.context = contextvars.copy_context() if parent is None else _copy(parent.context)
        self.result = None
        self.exception = None
        self.done = False
        self.trap = None      # what the task last waited for (monitor, stepper)
        self.parent = parent
        self.steps = 0
        self._waiting = None  # per-wait data of the current park's arm and abort (a timer entry, an rpc msgid)
        self.since = 0.0      # clock time of the latest park (monitor: "waiting for how long")

    @property
    def name(self) -> str:
        """The name given to ``spawn``, else the coroutine's qualified name."""
        return self._name or getattr(self.coro, "__qualname__", "?")

    @name.setter
    def name(self, value):
        self._name = value

    def __repr__(self):
        return f"<Task #{self.id} {self.name!r} {self.state}>"

    @property
    def cancelled(self) -> bool:
        """True once the task ended by cancellation."""
        return self.done and isinstance(self.exception, Cancelled)

    def cancel(self) -> None:
        """Ask the task to stop: ``Cancelled`` is thrown in at its suspension point.

        Thread-safe. A waiting task is woken at once; a running or runnable
        one gets it at its next suspension point. Calls before that delivery
        make one cancellation; a call after it is delivered again (asyncio's
        rule), so a task that caught ``Cancelled`` and waits in its cleanup
        can still be stopped.
        """
        with self._lock:
            if self.done or self._cancel_pending:
                return
            abort = self._abort
            if abort is not None and abort(self):
                self._abort = None
                self._cancelled = True
                self.kernel.wake(self, None, Cancelled())
            else:
                self._cancel_pending = True

    def _uncancel(self) -> None:
        """Take back a cancellation the kernel gave for its own reasons (a TaskGroup's, once reported)."""
        with self._lock:
            self._cancel_pending = self._cancelled = False

    @coroutine
    def join(self) -> Gen[T]:
        """Wait for the task to end; return its result or re-raise its exception."""
        return (yield (JOIN, self, False))

    @coroutine
    def wait_done(self) -> Gen[None]:
        """Wait for the task to end, whatever the outcome; return nothing."""
        yield (JOIN, self, True)

    def wake(self, value=None):
        """Resume this parked task with ``value`` (for primitives: see ``traps.park``)."""
        kernel = self.kernel
        if kernel.instruments:
            return kernel.wake(self, value, None)
        self._value = value       # Kernel.wake inlined: this is every primitive's hot path
        self._exc = None
        self._abort = None
        self._pool.push(self)

    def wake_exc(self, exc: BaseException):
        """Resume this parked task by throwing ``exc`` into it."""
        self.kernel.wake(self, None, exc)
