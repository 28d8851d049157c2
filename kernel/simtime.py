"""Simulated blocking time for the Stepper: ``time.sleep`` and ``time.monotonic`` inside a step.

The Stepper simulates every worker on one thread, so a real blocking call
would stop them all and leave the virtual clock where it was: lesson 06's
``time.sleep`` on IO would look as bad as on Main. While a step runs,
``time.sleep(s)`` adds ``s`` to the step's simulated duration instead of
waiting, and ``time.monotonic()`` reads the virtual clock plus that
duration. The stepper then keeps that worker busy, and holds back what the
step woke, until as much virtual time has passed: a blocking call on Main
freezes Main's lane, the same call on IO-1 freezes only IO-1. Other threads,
and code outside a step, get the real functions.
"""
import threading
import time

from .clock import VirtualClock

_REAL_SLEEP, _REAL_MONOTONIC = time.sleep, time.monotonic
_active = {}                 # thread ident -> the SimClock of the step running there
_lock = threading.Lock()


class SimClock(VirtualClock):
    """A virtual clock that also counts the simulated blocking of the step running now."""

    def __init__(self, start: float = 0.0):
        super().__init__(start)
        self.elapsed = 0.0      # seconds the running step has spent in time.sleep, simulated
        self.on_sleep = None    # called with the seconds of each simulated sleep (the stepper records it)

    def now(self) -> float:
        return self._now + self.elapsed


def _sleep(seconds):
    clock = _active.get(threading.get_ident())
    if clock is None:
        return _REAL_SLEEP(seconds)
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    clock.elapsed += seconds
    if clock.on_sleep is not None:
        clock.on_sleep(seconds)
    return None


def _monotonic():
    clock = _active.get(threading.get_ident())
    return _REAL_MONOTONIC() if clock is None else clock.now()


# A step may hand ``time.sleep`` on (``with_context(IO, time.sleep, 1)``): it should look like itself.
_sleep.__name__ = _sleep.__qualname__ = "sleep"
_monotonic.__name__ = _monotonic.__qualname__ = "monotonic"


class blocking_simulated:
    """``with blocking_simulated(clock):`` around one step: the time functions simulated on this thread."""

    def __init__(self, clock: SimClock):
        self.clock = clock

    def __enter__(self):
        self.clock.elapsed = 0.0
        with _lock:
            if not _active:
                time.sleep, time.monotonic = _sleep, _monotonic
            _active[threading.get_ident()] = self.clock
        return self.clock

    def __exit__(self, *exc):
        self.clock.elapsed = 0.0     # between steps the clock is the virtual clock alone
        with _lock:
            _active.pop(threading.get_ident(), None)
            if not _active:
                time.sleep, time.monotonic = _REAL_SLEEP, _REAL_MONOTONIC
