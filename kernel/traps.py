"""Traps: the requests a coroutine yields to the kernel.

A trap is a tuple whose first item is one of the trap codes below; the kernel
dispatches on it through one table, one handler per code: each handler in
``kernel.core`` is marked ``@_handles(CODE)``, so the table is keyed by code,
whatever the numbers are. The functions here are the public way to yield them. They are marked
``genloop.kernel.coroutine`` so ``async def`` code can ``await`` them too; generators
use ``yield from``. A bare ``yield`` is a checkpoint (let others run).
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .awaitable import coroutine
from .gentypes import Gen

if TYPE_CHECKING:
    from .dispatchers import Dispatcher
    from .task import Task

T = TypeVar("T")
#: What the kernel can run as a task: a generator function or an ``async def`` one.
CoroutineFunction = Callable[..., Gen[T]] | Callable[..., Coroutine[Any, Any, T]]
#: What a wait on readiness takes: a file descriptor or an object with ``fileno()``.
FileLike = Any

# Trap codes: small distinct ints, so the kernel's table is a tuple indexed by code.
SPAWN = 0      # (SPAWN, fn, args, dispatcher, name, group)
JOIN = 1       # (JOIN, task, quiet)
SLEEP = 2      # (SLEEP, seconds)
CURRENT = 3    # (CURRENT,)
IO = 4         # (IO, file or fd, READ or WRITE)
CALL = 5       # (CALL, dispatcher, fn, args, timeout)
SWITCH = 6     # (SWITCH, dispatcher)
PARK = 7       # (PARK, arm, abort[, what, ...]): ``what`` says in words what the task waits for;
               # items after it are the wait's own, for an arm bound once to read from ``task.trap``
TRAP_CODES = (SPAWN, JOIN, SLEEP, CURRENT, IO, CALL, SWITCH, PARK)
assert sorted(TRAP_CODES) == list(range(len(TRAP_CODES))), "trap codes must be 0..n-1, each once"
READ, WRITE = 0, 1


@coroutine
def checkpoint() -> Gen[None]:
    """Let every other runnable task take a step; a cancellation point."""
    yield


@coroutine
def sleep(seconds: float) -> Gen[None]:
    """Suspend for ``seconds`` (0 or less is a checkpoint)."""
    if seconds <= 0:
        yield
    else:
        yield (SLEEP, seconds)


@coroutine
def spawn(fn: CoroutineFunction[T], *args: Any, dispatcher: Dispatcher | None = None,
          name: str | None = None) -> Gen[Task[T]]:
    """Start ``fn(*args)`` as a new task and return its ``Task`` at once.

    ``dispatcher`` defaults to the parent's. The task is not structured: if it
    dies of an exception that nobody joins, the exception is logged, not raised
    in the parent (use ``TaskGroup`` for structure).
    """
    return (yield (SPAWN, fn, args, dispatcher, name, None))


@coroutine
def current_task() -> Gen[Task[Any]]:
    """The ``Task`` running this code."""
    return (yield (CURRENT,))


@coroutine
def wait_readable(f: FileLike) -> Gen[None]:
    """Suspend until ``f`` (a file object or fd) is readable.

    Try the read first and call this only on ``BlockingIOError``: the poller
    is edge-triggered, so a wake-up means "something changed", not a promise.
    """
    yield (IO, f, READ)


@coroutine
def wait_writable(f: FileLike) -> Gen[None]:
    """Suspend until ``f`` (a file object or fd) is writable (see ``wait_readable``)."""
    yield (IO, f, WRITE)


@overload
def with_context(dispatcher: Dispatcher, fn: CoroutineFunction[T], *args: Any, **kwargs: Any) -> Gen[T]: ...
@overload
def with_context(dispatcher: Dispatcher, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Gen[T]: ...
@coroutine
def with_context(dispatcher, fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` on ``dispatcher`` and return its value (Kotlin ``withContext``).

    A plain callable runs on one of the dispatcher's threads: this is how a
    blocking call leaves the event loop. A generator function runs there as a
    coroutine. Either way the caller resumes on its own dispatcher. Cancelling
    the caller cancels the work and waits for it to end; a plain call cannot
    be interrupted, so it finishes first.
    """
    if kwargs:
        fn, args = functools.partial(fn, *args, **kwargs), ()
    return (yield (CALL, dispatcher, fn, args, None))


@coroutine
def timeout_after(seconds: float, fn: CoroutineFunction[T], *args: Any, **kwargs: Any) -> Gen[T]:
    """Run generator function ``fn(*args, **kwargs)``; past ``seconds``, cancel it and raise ``Timeout``."""
    if kwargs:
        fn, args = functools.partial(fn, *args, **kwargs), ()
    return (yield (CALL, None, fn, args, seconds))


@coroutine
def switch_to(dispatcher: Dispatcher) -> Gen[None]:
    """Move the current task to ``dispatcher`` for good."""
    yield (SWITCH, dispatcher)


@coroutine
def park(arm: Callable[[Task[Any]], Any], abort: Callable[[Task[Any]], bool],
         what: str | None = None) -> Gen[Any]:
    """The one way a primitive suspends a task (trio's wait_task_rescheduled).

    ``what`` says in a few words what the task waits for ("waits for an rpc
    answer"): the step view, the monitor and the tracer show it.

    The kernel calls ``arm(task)`` with the task's wait state locked: it
    returns ``PARKED`` after recording the task where a waker will find it, or
    any other value to resume at once with that value. A waker later removes
    the task from its structure under the structure's lock (that removal is
    the claim: exactly one waker or canceller wins it) and calls
    ``task.wake(value)`` or ``task.wake_exc(exc)``. ``abort(task)`` undoes
    ``arm`` for cancellation: it returns True if it removed the task, False if
    a waker claimed it first.
    """
    return (yield (PARK, arm, abort, what))


PARKED = object()
