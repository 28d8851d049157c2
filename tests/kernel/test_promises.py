"""The scheduler keeps its promises whichever thread a task ends on (issue: run() off Main,
Ctrl-C on a worker, cancelling again, nested limited views, raising instruments,
head-of-line blocking, self-join, timeouts of blocking calls, equal deadlines)."""
import logging
import threading
import time

import pytest

from genloop.kernel import (
    Cancelled,
    Dispatcher,
    Dispatchers,
    Event,
    Instrument,
    Timeout,
    VirtualClock,
    current_kernel,
    current_task,
    run,
    runner,
    sleep,
    spawn,
    switch_to,
    timeout_after,
    with_context,
)
from genloop.kernel.task import RUNNING, WAITING
from tests.kernel.kernel_helpers import DEADLINE, PlainThread, until


def _run_bounded(main, **kwargs):
    """``run(main)`` on a plain thread, so a hang fails the test instead of stalling it."""
    started = time.monotonic()
    t = PlainThread(lambda: run(main, **kwargs))
    t.thread.join(DEADLINE)
    assert not t.thread.is_alive(), "run() did not return"
    return t.join(), time.monotonic() - started


# -- 1. run() returns as soon as the root ends, whichever thread it ends on ---------------

def _plain():
    return threading.current_thread().name


def _on(dispatcher):
    def main():
        yield from switch_to(dispatcher)
        return threading.current_thread().name
    return main


def _with_context_there():
    yield from switch_to(Dispatchers.Default)
    assert (yield from with_context(Dispatchers.IO, _plain)).startswith("genloop-IO")
    return threading.current_thread().name


def _raising_there():
    yield from switch_to(Dispatchers.Default)
    raise LookupError("from Default")


def _unconfined_woken_by_default():
    ev = Event()
    yield from switch_to(Dispatchers.Unconfined)

    def setter():
        yield from sleep(0.01)
        ev.set()

    yield from spawn(setter, dispatcher=Dispatchers.Default)
    yield from ev.wait()         # resumes on the Default worker that set it
    return threading.current_thread().name


ROOTS = {
    "Default": (_on(Dispatchers.Default), "Default"),
    "IO": (_on(Dispatchers.IO), "IO"),
    "custom": (_on(Dispatcher("Mine", threads=1)), "Mine"),
    "limited": (_on(Dispatchers.Default.limited(1)), "Default"),
    "with_context there": (_with_context_there, "Default"),
    "Unconfined woken by Default": (_unconfined_woken_by_default, "Default"),
}


@pytest.mark.concurrency
@pytest.mark.parametrize("case", sorted(ROOTS))
def test_run_returns_when_the_root_ends_off_main(case):
    main, where = ROOTS[case]
    result, _ = _run_bounded(main)
    assert result.startswith(f"genloop-{where}")


@pytest.mark.concurrency
def test_run_raises_when_the_root_raises_off_main():
    with pytest.raises(LookupError, match="from Default"):
        _run_bounded(_raising_there)


@pytest.mark.concurrency
def test_an_unrelated_timer_does_not_delay_the_end():
    def main():
        yield from spawn(sleep, 3.0)
        yield from switch_to(Dispatchers.Default)
        return 42

    result, took = _run_bounded(main)
    assert result == 42
    assert took < 1.5, f"run() returned {took:.2f} s after the root ended"


# -- 2. Ctrl-C on a worker stops run() as on Main -----------------------------------------

@pytest.mark.concurrency
@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_on_a_worker_stops_run(exc, caplog):
    ran = []

    def quick(i):
        ran.append(i)
        yield

    def boom():
        raise exc()
        yield  # pragma: no cover

    def main():
        yield from spawn(boom, dispatcher=Dispatchers.Default)
        for i in range(63):
            yield from spawn(quick, i, dispatcher=Dispatchers.Default)
        yield from sleep(30)

    with caplog.at_level(logging.ERROR, logger="genloop"):
        with pytest.raises(exc):
            _run_bounded(main)
    assert not [r for r in caplog.records if "did not end" in r.getMessage()]


# -- 3. a second cancel is delivered ---------------------------------------------------------

def test_a_second_cancel_interrupts_a_wait_in_cleanup():
    stuck = Event()
    log = []

    def worker():
        try:
            yield from sleep(100)
        except Cancelled:
            log.append("cleanup")
            yield from stuck.wait()            # never set: only a second cancel ends this
            log.append("not reached")

    def main():
        t = yield from spawn(worker)
        yield from until(lambda: t.state == WAITING)
        t.cancel()
        yield from until(lambda: log == ["cleanup"] and t.state == WAITING)
        t.cancel()
        try:
            yield from timeout_after(1, t.join)
        except Cancelled:
            return "cancelled"

    assert run(main, clock=VirtualClock()) == "cancelled"
    assert log == ["cleanup"]


@pytest.mark.concurrency
def test_shutdown_cancels_again_a_task_that_waits_in_its_cleanup(monkeypatch, caplog):
    monkeypatch.setattr(runner, "SHUTDOWN_GRACE", 0.2)
    ended = []

    def stubborn():
        try:
            yield from sleep(100)
        except Cancelled:
            try:
                yield from Event().wait()
            finally:
                ended.append("second cancel")

    def main():
        t = yield from spawn(stubborn)
        yield from until(lambda: t.state == WAITING)

    with caplog.at_level(logging.ERROR, logger="genloop"):
        _, took = _run_bounded(main)
    assert ended == ["second cancel"]
    assert not [r for r in caplog.records if "did not end" in r.getMessage()]
    assert took < 2


# -- 4. limited views nest, and inline ones do not pile up --------------------------------

@pytest.mark.concurrency
@pytest.mark.parametrize("inner_first", [False, True])
def test_limited_views_of_limited_views_nest(inner_first):
    outer = Dispatchers.Default.limited(4)
    inner = outer.limited(2)
    busy = [0, 0]
    peak = [0, 0]
    lock = threading.Lock()

    def work():
        for _ in range(3):
            with lock:
                busy[0] += 1
                peak[0] = max(peak[0], busy[0])
            time.sleep(0.001)
            with lock:
                busy[0] -= 1
            yield

    def main():
        first, second = (inner, outer) if inner_first else (outer, inner)
        tasks = []
        for dispatcher in (first,) * 4 + (second,) * 4:
            tasks.append((yield from spawn(work, dispatcher=dispatcher)))
        for t in tasks:
            yield from timeout_after(DEADLINE, t.join)
        pools = current_kernel().pools
        default = pools[Dispatchers.Default]
        views = [p for p in pools.values() if p.limited]
        return default, views

    (default, views), _ = _run_bounded(main)
    assert len(views) == 2, "both are views"
    by_n = {v.n: v for v in views}
    assert by_n[2].parent is by_n[4] and by_n[4].parent is default
    assert peak[0] <= 4


@pytest.mark.concurrency
def test_inline_views_and_dispatchers_do_not_pile_up_in_the_kernel():
    def f():
        return 1

    def main():
        for _ in range(2000):
            yield from with_context(Dispatchers.Default.limited(2), f)
        for i in range(20):
            yield from with_context(Dispatcher(f"inline-{i}", threads=1), f)
        kernel = current_kernel()
        return len(kernel.pools)

    count, _ = _run_bounded(main)
    assert count <= 5, f"{count} pools left in the kernel"


# -- 8. a raising instrument is reported, never breaks the kernel ------------------------

class Raising(Instrument):
    def __init__(self, hook, on_worker=False):
        self.hook, self.on_worker = hook, on_worker

    def _maybe(self, hook):
        if hook == self.hook and (not self.on_worker or threading.current_thread().name.startswith("genloop-")):
            raise RuntimeError(f"broken {hook}")

    def after_step(self, task, trap):
        self._maybe("after_step")

    def before_step(self, task):
        self._maybe("before_step")

    def task_spawned(self, task):
        self._maybe("task_spawned")


@pytest.mark.concurrency
@pytest.mark.parametrize("hook,on_worker", [("after_step", False), ("before_step", True), ("task_spawned", False)])
def test_a_raising_instrument_is_logged_once_and_the_kernel_goes_on(hook, on_worker, caplog):
    def child(i):
        yield
        return i

    def main():
        tasks = []
        for i in range(5):
            tasks.append((yield from spawn(child, i, dispatcher=Dispatchers.Default)))
        out = []
        for t in tasks:
            out.append((yield from timeout_after(DEADLINE, t.join)))
        return out

    with caplog.at_level(logging.ERROR, logger="genloop"):
        result, _ = _run_bounded(main, instruments=[Raising(hook, on_worker)])
    assert result == list(range(5))
    reports = [r for r in caplog.records if f"failed in {hook}" in r.getMessage()]
    assert len(reports) == 1 and reports[0].exc_info is not None


# -- 9. one long step does not hold back the rest of its batch ----------------------------

@pytest.mark.concurrency
def test_a_long_step_does_not_hold_back_the_rest_of_its_batch():
    """Both workers are held until 64 tasks are queued, so each takes a batch of 32; the
    first of one batch then runs for up to 0.5 s while the other worker runs out of work."""
    gate = threading.Event()
    release = threading.Event()

    def blocker():
        gate.wait(DEADLINE)
        yield

    def slow():
        release.wait(0.5)          # a long step; the test ends it early once the others ran
        yield

    def quick():
        yield

    def main():
        blockers = []
        for _ in range(2):
            blockers.append((yield from spawn(blocker, dispatcher=Dispatchers.Default)))
        yield from until(lambda: all(b.state == RUNNING for b in blockers))
        yield from spawn(slow, dispatcher=Dispatchers.Default)
        quick_tasks = []
        for _ in range(63):
            quick_tasks.append((yield from spawn(quick, dispatcher=Dispatchers.Default)))
        started = time.monotonic()
        gate.set()
        try:
            for t in quick_tasks:
                yield from timeout_after(0.3, t.join)
        finally:
            release.set()
        return time.monotonic() - started

    took, _ = _run_bounded(main, default_threads=2)
    assert took < 0.3


@pytest.mark.concurrency
def test_stolen_batches_lose_and_repeat_no_step():
    """As above, but the tasks behind the long step re-queue themselves 20 times: whatever a
    thief takes from the stuck worker (its batch, its re-queued tasks), every step runs once."""
    gate = threading.Event()
    release = threading.Event()
    counts = [0] * 63

    def blocker():
        gate.wait(DEADLINE)
        yield

    def slow():
        release.wait(DEADLINE)
        yield

    def worker(i):
        for _ in range(20):
            counts[i] += 1
            yield
        return i

    def main():
        blockers = []
        for _ in range(2):
            blockers.append((yield from spawn(blocker, dispatcher=Dispatchers.Default)))
        yield from until(lambda: all(b.state == RUNNING for b in blockers))
        tasks = []
        for i in range(63):          # the long step in mid-batch: some tasks ran before it
            if i == 16:
                yield from spawn(slow, dispatcher=Dispatchers.Default)
            tasks.append((yield from spawn(worker, i, dispatcher=Dispatchers.Default)))
        gate.set()
        try:
            out = []
            for t in tasks:
                out.append((yield from timeout_after(DEADLINE, t.join)))
        finally:
            release.set()
        return out

    result, _ = _run_bounded(main, default_threads=2)
    assert result == list(range(63))
    assert counts == [20] * 63


# -- 10. self-join ------------------------------------------------------------------------

def test_joining_itself_raises_at_once():
    def main():
        me = yield from current_task()
        try:
            yield from me.join()
        except RuntimeError as e:
            return str(e)

    message, _ = _run_bounded(main)
    assert "cannot join itself" in message


# -- 15. what holds -----------------------------------------------------------------------

@pytest.mark.concurrency
def test_a_timeout_says_how_long_an_uninterruptible_call_really_took():
    def blocking():
        time.sleep(0.3)       # the subject: a blocking call that overruns its timeout

    def work():
        yield from with_context(Dispatchers.IO, blocking)

    def main():
        try:
            yield from timeout_after(0.05, work)
        except Timeout as e:
            return str(e)

    message, _ = _run_bounded(main)
    assert "timed out after 0.05 s" in message
    took = float(message.split("ended only ")[1].split(" s")[0])
    assert took >= 0.3


def test_equal_deadlines_fire_in_the_order_they_were_armed_on_main():
    def sleeper(i, order):
        yield from sleep(1)
        order.append(i)

    def main():
        order = []
        tasks = []
        for i in range(6):
            tasks.append((yield from spawn(sleeper, i, order)))
        for t in tasks:
            yield from t.join()
        return order

    assert all(run(main, clock=VirtualClock()) == list(range(6)) for _ in range(10))
