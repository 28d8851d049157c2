"""Clocks: where the kernel's idea of "now" comes from."""
import threading
import time


class MonotonicClock:
    """Real time from ``time.monotonic``; never jumps."""

    virtual = False
    now = staticmethod(time.monotonic)


class VirtualClock:
    """Time that only moves when the kernel has nothing else to do.

    When no task is runnable and no I/O or cross-thread wake-up is pending,
    the kernel jumps the clock to the earliest timer, so a program that sleeps
    for an hour finishes at once, in the same order every run.
    """

    virtual = True

    def __init__(self, start: float = 0.0):
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def advance_to(self, when: float) -> None:
        with self._lock:
            if when > self._now:
                self._now = when
