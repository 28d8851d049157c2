"""Synchronisation primitives, all built on one suspension: ``traps.park``
(yielded here as its bare ``(PARK, arm, abort, what)`` trap, one generator
frame less per wait; ``what`` is how the step view and the monitor describe it).
A primitive that is waited on again and again (an Event, a Semaphore or Lock,
a Queue's getters) makes that trap at its first wait and keeps it: no bound
methods and no tuple per wait, at the price of a reference cycle the
collector frees.

Each keeps its state under its own lock, so any worker thread may use it, and
the methods named "from any thread" work from plain threads too. A waiter is
claimed by removing it from the primitive's deque under that lock; the
winner (a waker, or ``abort`` on behalf of ``Task.cancel``) is the only one
that may resume it. The hot paths take the lock as ``acquire()`` and
try/finally ``release()``, half the cost of ``with`` (see ``kernel.poller``).
"""
import threading
from collections import deque
from typing import Generic, TypeVar

from .awaitable import coroutine
from .errors import QueueClosed, QueueEmpty, QueueFull
from .gentypes import Gen
from .traps import PARK, PARKED

T = TypeVar("T")


def _remove(waiters, item) -> bool:
    try:
        waiters.remove(item)
    except ValueError:
        return False
    return True


class Event:
    """A flag tasks can wait for; ``set()`` from any thread."""

    __slots__ = ("_lock", "_flag", "_waiters", "_trap")

    def __init__(self):
        self._lock = threading.Lock()
        self._flag = False
        self._waiters = deque()
        self._trap = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._lock.acquire()
        try:
            if self._flag:
                return
            self._flag = True
            waiters, self._waiters = self._waiters, deque()
        finally:
            self._lock.release()
        for t in waiters:
            t.wake()

    def clear(self) -> None:
        with self._lock:
            self._flag = False

    @coroutine
    def wait(self) -> Gen[None]:
        """Suspend until the flag is set (at once if it is)."""
        if not self._flag:
            trap = self._trap
            if trap is None:      # made at the first wait, kept for the next ones (see the module's doc)
                trap = self._trap = (PARK, self._arm, self._abort, "waits for an Event")
            yield trap

    def _arm(self, task):
        self._lock.acquire()
        try:
            if self._flag:
                return None
            self._waiters.append(task)
            return PARKED
        finally:
            self._lock.release()

    def _abort(self, task):
        with self._lock:
            return _remove(self._waiters, task)


class Semaphore:
    """``acquire()`` (a trap) takes one of ``value`` permits; ``release()`` from any thread."""

    __slots__ = ("_lock", "_value", "_waiters", "_bound", "_trap")
    _WAITS = "waits to acquire a Semaphore"

    def __init__(self, value: int = 1, *, bound: int | None = None):
        if value < 0:
            raise ValueError("a semaphore's value cannot be negative")
        self._lock = threading.Lock()
        self._value = value
        self._waiters = deque()
        self._bound = bound
        self._trap = None

    @property
    def value(self) -> int:
        return self._value

    @coroutine
    def acquire(self) -> Gen[None]:
        """Take a permit, waiting (in FIFO order) while there is none."""
        if self._value:      # a hint read without the lock, as in Queue.get: the arm settles it
            self._lock.acquire()
            try:
                if self._value and not self._waiters:
                    self._value -= 1
                    return
            finally:
                self._lock.release()
        trap = self._trap
        if trap is None:
            trap = self._trap = (PARK, self._arm, self._abort, self._WAITS)
        yield trap

    def release(self) -> None:
        """Give a permit back; a waiter, if any, gets it directly."""
        self._lock.acquire()
        try:
            if self._waiters:
                waiter = self._waiters.popleft()
            else:
                if self._bound is not None and self._value >= self._bound:
                    raise RuntimeError(f"{type(self).__name__} released more often than acquired")
                self._value += 1
                return
        finally:
            self._lock.release()
        waiter.wake()

    def _arm(self, task):
        self._lock.acquire()
        try:
            if self._value and not self._waiters:
                self._value -= 1
                return None
            self._waiters.append(task)
            return PARKED
        finally:
            self._lock.release()

    def _abort(self, task):
        with self._lock:
            return _remove(self._waiters, task)


class Lock(Semaphore):
    """A mutex for tasks: ``yield from lock.acquire()`` ... ``lock.release()``."""

    __slots__ = ()
    _WAITS = "waits to acquire a Lock"

    def __init__(self):
        super().__init__(1, bound=1)

    def locked(self) -> bool:
        return self._value == 0


class Queue(Generic[T]):
    """A FIFO between tasks, bounded when ``maxsize`` > 0.

    ``put``/``get`` are traps; ``put_nowait`` and ``close`` work from any
    thread. A put to a waiting getter hands the item over directly. After
    ``close()``, items already queued can still be taken; then ``get`` raises
    ``QueueClosed``, as does ``put``.
    """

    __slots__ = ("_lock", "_items", "_maxsize", "_getters", "_putters", "_closed", "_get_trap")

    def __init__(self, maxsize: int = 0):
        self._lock = threading.Lock()
        self._items = deque()
        self._maxsize = maxsize
        self._getters = deque()
        self._putters = deque()     # (task, item) pairs waiting for room
        self._closed = False
        self._get_trap = None

    def __len__(self):
        return len(self._items)

    def qsize(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def _put_locked(self, item):
        """Place ``item``; return a getter to wake with it, or raise QueueFull."""
        if self._closed:
            raise QueueClosed("put on a closed queue")
        if self._getters:
            return self._getters.popleft()
        if self._maxsize and len(self._items) >= self._maxsize:
            raise QueueFull
        self._items.append(item)
        return None

    def put_nowait(self, item: T) -> None:
        """Put without waiting (from any thread); ``QueueFull`` if there is no room."""
        self._lock.acquire()
        try:
            getter = self._put_locked(item)
        finally:
            self._lock.release()
        if getter is not None:
            getter.wake(item)

    @coroutine
    def put(self, item: T) -> Gen[None]:
        """Put ``item``, waiting while the queue is full."""
        lock = self._lock
        lock.acquire()
        try:
            if self._getters:     # a getter waits (so the queue is open): the hand-over, without a call
                getter = self._getters.popleft()
            else:
                try:
                    getter = self._put_locked(item)
                except QueueFull:
                    getter = False
        finally:
            lock.release()
        if getter is False:
            yield (PARK, lambda task: self._arm_put(task, item), self._abort_put, "waits to put into a full Queue")
        elif getter is not None:
            getter.wake(item)

    def _arm_put(self, task, item):
        self._lock.acquire()
        try:
            try:
                getter = self._put_locked(item)
            except QueueFull:
                self._putters.append((task, item))
                return PARKED
        finally:
            self._lock.release()
        if getter is not None:
            getter.wake(item)
        return None

    def _abort_put(self, task):
        with self._lock:
            for pair in self._putters:
                if pair[0] is task:
                    self._putters.remove(pair)
                    return True
            return False

    def _get_locked(self):
        """Take the next item (refilling from a waiting putter); the putter to wake, if any."""
        item = self._items.popleft()
        putter = None
        if self._putters:
            putter, pending = self._putters.popleft()
            self._items.append(pending)
        return item, putter

    def get_nowait(self) -> T:
        """Take an item without waiting; ``QueueEmpty`` (or ``QueueClosed``) if there is none."""
        self._lock.acquire()
        try:
            if not self._items:
                raise QueueClosed("get on a closed, empty queue") if self._closed else QueueEmpty()
            item, putter = self._get_locked()
        finally:
            self._lock.release()
        if putter is not None:
            putter.wake()
        return item

    @coroutine
    def get(self) -> Gen[T]:
        """Take the next item, waiting while the queue is empty."""
        # An empty queue goes straight to the park, whose arm looks again under
        # the lock: one lock per get, whether it waits or not. (The look
        # without the lock is one atomic read, a hint the arm settles.)
        if self._closed and not self._items:    # in this order: once closed, no put refills it
            raise QueueClosed("get on a closed, empty queue")
        if self._items:
            self._lock.acquire()
            try:
                if self._items:
                    item, putter = self._get_locked()
                    if putter is not None:
                        putter.wake()
                    return item
            finally:
                self._lock.release()
        trap = self._get_trap
        if trap is None:
            trap = self._get_trap = (PARK, self._arm_get, self._abort_get, "waits to get from an empty Queue")
        return (yield trap)

    def _arm_get(self, task):
        lock = self._lock
        lock.acquire()
        try:
            if self._items:
                item, putter = self._get_locked()
            elif self._closed:
                raise QueueClosed("get on a closed, empty queue")
            else:
                self._getters.append(task)
                return PARKED
        finally:
            lock.release()
        if putter is not None:
            putter.wake()
        return item

    def _abort_get(self, task):
        with self._lock:
            return _remove(self._getters, task)

    def close(self) -> None:
        """No more puts; waiting getters and putters get ``QueueClosed`` (from any thread)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            getters, self._getters = self._getters, deque()
            putters, self._putters = self._putters, deque()
        for t in getters:
            t.wake_exc(QueueClosed("the queue was closed"))
        for t, _ in putters:
            t.wake_exc(QueueClosed("the queue was closed"))

    def __iter__(self):
        raise TypeError("iterate a Queue with `while True: item = yield from q.get()`")


class Future(Generic[T]):
    """A value that arrives later, from any thread; tasks ``wait()`` for it."""

    __slots__ = ("_lock", "_done", "_result", "_exception", "_waiters")

    def __init__(self):
        self._lock = threading.Lock()
        self._done = False
        self._result = None
        self._exception = None
        self._waiters = deque()

    def done(self) -> bool:
        return self._done

    def result(self) -> T:
        """The value (or raise the exception); ``RuntimeError`` if not done yet."""
        if not self._done:
            raise RuntimeError("the future has no result yet")
        if self._exception is not None:
            raise self._exception
        return self._result

    def set_result(self, value: T) -> None:
        self._complete(value, None)

    def set_exception(self, exc: BaseException) -> None:
        self._complete(None, exc)

    def _complete(self, value, exc):
        self._lock.acquire()
        try:
            if self._done:
                raise RuntimeError("the future is already done")
            self._done, self._result, self._exception = True, value, exc
            waiters, self._waiters = self._waiters, deque()
        finally:
            self._lock.release()
        for t in waiters:
            if exc is None:
                t.wake(value)
            else:
                t.wake_exc(exc)

    @coroutine
    def wait(self) -> Gen[T]:
        """Suspend until done; return the value or raise the exception."""
        if not self._done:
            return (yield (PARK, self._arm, self._abort, "waits for a Future"))
        return self.result()

    def _arm(self, task):
        self._lock.acquire()
        try:
            if not self._done:
                self._waiters.append(task)
                return PARKED
        finally:
            self._lock.release()
        return self.result()

    def _abort(self, task):
        with self._lock:
            return _remove(self._waiters, task)
