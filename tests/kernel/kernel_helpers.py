"""Helpers shared by the kernel tests (imported as ``kernel_helpers``).

Every wait in these tests is bounded: plain threads poll with ``wait_until``,
tasks poll with ``until`` (a checkpoint loop with a real-time deadline), and
blocking work uses ``threading.Event``/``Barrier`` with a timeout. Nothing
sleeps "long enough"; time-driven behaviour runs under ``VirtualClock``.
"""
from __future__ import annotations

import inspect
import os
import threading
import time

from genloop.kernel import checkpoint

#: Upper bound of every wait in the kernel tests (seconds). A passing test
#: never gets near it; it only turns a hang into a readable failure.
DEADLINE = 5.0


def wait_until(condition, timeout: float = DEADLINE) -> bool:
    """Poll ``condition`` from a plain thread until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def until(condition, timeout: float = DEADLINE, what: str = "condition"):
    """Inside a task: take checkpoints until ``condition()`` holds (bounded by real time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        yield from checkpoint()


def thread_names(prefix: str) -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith(prefix))


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


class PlainThread:
    """A ``threading.Thread`` whose exception (if any) ``join()`` re-raises."""

    def __init__(self, fn, *args, name=None):
        self.error = None
        self.result = None

        def body():
            try:
                self.result = fn(*args)
            except BaseException as e:  # noqa: BLE001 - re-raised by join()
                self.error = e

        self.thread = threading.Thread(target=body, name=name, daemon=True)
        self.thread.start()

    def join(self, timeout: float = DEADLINE):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "plain thread did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def when_state(task, state, action, timeout: float = DEADLINE) -> PlainThread:
    """From a plain thread: wait until ``task.state == state``, then call ``action()``."""

    def go():
        assert wait_until(lambda: task.state == state, timeout), \
            f"{task!r} never reached state {state!r}"
        return action()

    return PlainThread(go, name="plain-waker")




def awaitable_generator_function(fn) -> bool:
    """True if generator function ``fn`` is marked (``genloop.kernel.coroutine``) so ``await`` works on it."""
    code = getattr(inspect.unwrap(fn), "__code__", None)
    return code is not None and bool(code.co_flags & inspect.CO_ITERABLE_COROUTINE)


def public_generator_functions(namespace) -> dict:
    """Every public generator function of a module's ``__all__``, including the methods of its classes."""
    found = {}
    for name in namespace.__all__:
        obj = getattr(namespace, name)
        members = vars(obj).items() if isinstance(obj, type) else [("", obj)]
        for attr, member in members:
            if attr.startswith("_"):
                continue
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if inspect.isgeneratorfunction(member):
                found[f"{name}.{attr}" if attr else name] = member
    return found
