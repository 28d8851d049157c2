"""Task: one coroutine and its bookkeeping."""
import contextvars
import threading
from types import GeneratorType
from typing import Generic, TypeVar

from .awaitable import coroutine
from .errors import Cancelled
from .gentypes import Gen
from .traps import JOIN

T = TypeVar("T")

_copy = contextvars.Context.copy   # unbound: no method object per spawn
_gen_send = GeneratorType.send
_get_ident = threading.get_ident

# Task states, as ``Task.state`` reports them.
NEW, READY, RUNNING, WAITING, DONE = "new", "ready", "running", "waiting", "done"


class Task(Generic[T]):
    """A coroutine the kernel steps; ``Task[T]`` is one whose coroutine returns ``T``.

    At any instant a task is in exactly one place: a run queue (READY or NEW),
    a wait structure (WAITING), or being stepped by one thread (RUNNING).

    The wait state (``_abort``, ``_cancel_pending``, ``_cancelled``) of a
    task on Main is Main's alone: only the Main thread reads or writes it, so
    it needs no lock, and ``cancel()`` from another thread hands the work to
    Main (``MainPool.call_soon``). A task on any other pool may be cancelled
    from any thread while a worker parks it: there ``_lock`` guards that
    state; it is always taken first, before any structure's own lock, so the
    kernel's locks never form a cycle. A task changes pools only under
    ``_lock`` (``switch_to``), which orders a cancel against the move; a
    task born on Main makes its lock then.

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
        # the core's: where the task runs and what it resumes with (``_send``: the
        # coroutine's unbound ``send``, so a step makes no method object)
        "_pool", "_value", "_exc", "_send",
        # the core's: the wait and cancellation state (under ``_lock``)
        "_lock", "_abort", "_cancel_pending", "_cancelled", "_waiting",
        # the core's: who learns of the end, and the group whose body this task is
        "_watchers", "_group", "_owns",
        "__weakref__",
    )

    def __init__(self, kernel, coro, name, dispatcher, pool, parent, group):
        # One atomic operation (itertools.count is thread-safe, on free-threaded
        # builds too): spawning takes no lock.
        self.id = next(kernel._ids)
        self._name = name
        self.coro = coro
        self._send = _gen_send if type(coro) is GeneratorType else type(coro).send
        self.state = NEW
        self.dispatcher = dispatcher
        self._pool = pool
        self.kernel = kernel
        self._value = None
        self._exc = None
        self._abort = None
        self._cancel_pending = False
        self._cancelled = False
        # A task on Main needs no lock (see above) until it moves (``own_lock``):
        # 64 bytes less per task, which C10K multiplies.
        self._lock = None if pool is kernel.main_pool else threading.Lock()
        self._watchers = None
        self._group = group   # the TaskGroup that spawned it, if any
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
        self.since = 0.0      # when the latest park began (on Main: its turn's start); monitor, idle sweeps

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
        main = self.kernel.main_pool
        if self._pool is not main:
            with self._lock:
                if self._pool is not main:     # still: a move to Main takes this lock
                    return self._cancel_owned()
        if main.on_own_thread():
            self._cancel_owned()
        else:
            main.call_soon(self.cancel)        # Main owns its wait state; this runs again there

    def _cancel_owned(self):
        """``cancel`` by the thread that may touch the wait state now (Main's, or under ``_lock``)."""
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
        """Take back a cancellation the kernel gave for its own reasons (a TaskGroup's, once reported).

        The task itself calls this, as it runs.
        """
        with self.own_lock():
            self._cancel_pending = self._cancelled = False

    def own_lock(self) -> threading.Lock:
        """``_lock``, made first if this task was born on Main; only the task's own step calls this."""
        if self._lock is None:
            self._lock = threading.Lock()
        return self._lock

    # A task that has ended answers without a trip through the kernel (the
    # JOIN trap would answer the same at once: it is no suspension point).
    @coroutine
    def join(self) -> Gen[T]:
        """Wait for the task to end; return its result or re-raise its exception."""
        if self.done and self.exception is None:
            return self.result
        return (yield (JOIN, self, False))

    @coroutine
    def wait_done(self) -> Gen[None]:
        """Wait for the task to end, whatever the outcome; return nothing."""
        if not self.done:
            yield (JOIN, self, True)

    def wake(self, value=None):
        """Resume this parked task with ``value`` (for primitives: see ``traps.park``)."""
        kernel = self.kernel
        if kernel.instruments:
            return kernel.wake(self, value, None)
        self._value = value       # Kernel.wake inlined: this is every primitive's hot path
        self._abort = None        # (parked, so _exc is None already: a step clears it)
        pool = self._pool
        if pool is kernel.main_pool and _get_ident() == pool.ident:
            self.state = READY    # MainPool.push inlined, for a waker on Main itself
            pool.queue.append(self)
        else:
            pool.push(self)

    def wake_here(self, value=None):
        """``wake``, by code that runs on Main, of a task on Main: no thread check.

        For a waker confined to Main (a confined rpc peer's reader); for a
        task on another pool it is ``wake``. From any other thread, use ``wake``.
        """
        kernel = self.kernel
        pool = self._pool
        if kernel.instruments or pool is not kernel.main_pool:
            return self.wake(value)
        self._value = value       # parked: _exc is None already
        self._abort = None
        self.state = READY        # MainPool.push on Main, inlined
        pool.queue.append(self)

    def wake_exc(self, exc: BaseException):
        """Resume this parked task by throwing ``exc`` into it."""
        self.kernel.wake(self, None, exc)
