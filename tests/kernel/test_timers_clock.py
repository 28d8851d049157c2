"""sleep, timeout_after / Timeout, MonotonicClock and VirtualClock."""
import sys
import threading
import time

import pytest

from genloop.kernel import (
    Cancelled,
    Dispatcher,
    Dispatchers,
    Event,
    Instrument,
    Queue,
    Timeout,
    VirtualClock,
    checkpoint,
    current_task,
    run,
    sleep,
    spawn,
    timeout_after,
    with_context,
)
from tests.kernel.kernel_helpers import DEADLINE, PlainThread, wait_until


class Boom(Exception):
    pass


# -- sleep ---------------------------------------------------------------------------------------

def test_sleep_takes_at_least_its_duration_in_real_time():
    def main():
        start = time.monotonic()
        yield from sleep(0.05)
        return time.monotonic() - start

    assert 0.05 <= run(main) < 1.0


@pytest.mark.parametrize("seconds", [0, -1])
def test_sleep_zero_or_negative_is_a_checkpoint(seconds):
    order = []

    def other():
        order.append("other")
        yield

    def main():
        yield from spawn(other)
        order.append("before")
        yield from sleep(seconds)
        order.append("after")

    run(main)
    assert order == ["before", "other", "after"]


def test_sleepers_wake_in_deadline_order():
    clock = VirtualClock()
    woke = []

    def sleeper(d):
        yield from sleep(d)
        woke.append((d, clock.now()))

    def main():
        ts = []
        for d in (3, 1, 2, 1.5, 0.5):
            ts.append((yield from spawn(sleeper, d)))
        for t in ts:
            yield from t.join()

    run(main, clock=clock)
    assert woke == [(0.5, 0.5), (1, 1), (1.5, 1.5), (2, 2), (3, 3)]


@pytest.mark.concurrency
def test_sleep_on_a_worker_thread():
    def child():
        start = time.monotonic()
        yield from sleep(0.02)
        return time.monotonic() - start, threading.current_thread().name

    def main():
        t = yield from spawn(child, dispatcher=Dispatchers.Default)
        return (yield from t.join())

    elapsed, name = run(main)
    assert elapsed >= 0.02
    assert name.startswith("genloop-Default-")


# -- timeout_after --------------------------------------------------------------------------

def test_timeout_after_returns_the_value_in_time():
    def quick(x):
        yield from sleep(1)
        return x + 1

    def main():
        return (yield from timeout_after(10, quick, 41))

    clock = VirtualClock()
    assert run(main, clock=clock) == 42
    assert clock.now() == 1


def test_timeout_after_raises_timeout_and_cancels_the_work():
    clock = VirtualClock()
    log = []

    def slow():
        try:
            yield from sleep(100)
            log.append("not reached")
        except Cancelled:
            log.append(("cancelled at", clock.now()))
            raise
        finally:
            log.append("finally")

    def main():
        with pytest.raises(Timeout) as info:
            yield from timeout_after(5, slow)
        log.append(("caller resumed at", clock.now()))
        return info.value

    err = run(main, clock=clock)
    assert isinstance(err, TimeoutError)
    assert log == [("cancelled at", 5), "finally", ("caller resumed at", 5)]


def test_timeout_after_with_real_time():
    def forever():
        yield from Event().wait()

    def main():
        start = time.monotonic()
        with pytest.raises(Timeout):
            yield from timeout_after(0.05, forever)
        return time.monotonic() - start

    assert 0.05 <= run(main) < 1.0


def test_timeout_after_re_raises_the_work_exception():
    def failing():
        yield from sleep(1)
        raise Boom("inner")

    def main():
        with pytest.raises(Boom, match="inner"):
            yield from timeout_after(10, failing)

    run(main, clock=VirtualClock())


def test_timeout_when_the_work_swallows_cancelled_is_still_a_timeout():
    def stubborn():
        try:
            yield from sleep(100)
        except Cancelled:
            return "swallowed"

    def main():
        with pytest.raises(Timeout):
            yield from timeout_after(1, stubborn)

    run(main, clock=VirtualClock())


def test_nested_timeouts_inner_shorter():
    clock = VirtualClock()

    def innermost():
        yield from sleep(100)

    def middle():
        try:
            yield from timeout_after(2, innermost)
        except Timeout:
            return ("inner timed out at", clock.now())

    def main():
        return (yield from timeout_after(10, middle))

    assert run(main, clock=clock) == ("inner timed out at", 2)


def test_nested_timeouts_outer_shorter():
    clock = VirtualClock()
    log = []

    def innermost():
        try:
            yield from sleep(100)
        finally:
            log.append(("innermost finally", clock.now()))

    def middle():
        try:
            yield from timeout_after(10, innermost)
        except BaseException as e:
            log.append(("middle saw", type(e).__name__, clock.now()))
            raise

    def main():
        with pytest.raises(Timeout):
            yield from timeout_after(2, middle)
        log.append(("outer timed out at", clock.now()))
        # the inner timer (at 10) must not fire into anything later
        yield from sleep(20)
        log.append(("later", clock.now()))

    run(main, clock=clock)
    assert log == [
        ("innermost finally", 2),
        ("middle saw", "Cancelled", 2),        # the inner call did not time out: it was cancelled
        ("outer timed out at", 2),
        ("later", 22),
    ]


def test_cancelling_the_caller_of_timeout_after_is_cancelled_not_timeout():
    clock = VirtualClock()
    caught = []

    def work():
        yield from sleep(100)

    def caller():
        try:
            yield from timeout_after(50, work)
        except BaseException as e:
            caught.append(type(e).__name__)
            raise

    def main():
        t = yield from spawn(caller)
        yield from sleep(1)
        t.cancel()
        with pytest.raises(Cancelled):
            yield from t.join()

    run(main, clock=clock)
    assert caught == ["Cancelled"]


# -- VirtualClock ------------------------------------------------------------------------------

def test_virtual_clock_an_hour_of_sleeping_takes_no_real_time():
    clock = VirtualClock()

    def sleeper(chunk, n):
        for _ in range(n):
            yield from sleep(chunk)

    def main():
        ts = []
        for chunk, n in ((60, 60), (1, 3600), (900, 4), (7.5, 480)):
            ts.append((yield from spawn(sleeper, chunk, n)))
        for t in ts:
            yield from t.join()
        return clock.now()

    start = time.monotonic()
    assert run(main, clock=clock) == pytest.approx(3600)
    assert time.monotonic() - start < 1.0


class StepRecorder(Instrument):
    def __init__(self, clock):
        self.clock = clock
        self.steps = []
        self.lock = threading.Lock()

    def before_step(self, task):
        with self.lock:
            self.steps.append((self.clock.now(), task.name))


def sleepy_program():
    def worker(durations):
        for d in durations:
            yield from sleep(d)
            yield                                  # an extra step at the same instant

    def main():
        plans = {
            "a": [1, 2, 3, 0.5],
            "b": [2, 1, 0.25, 0.25, 3],
            "c": [0.5, 0.5, 0.5, 5],
            "d": [3, 3],
            "e": [1, 1, 1, 1, 1, 1],
        }
        ts = []
        for name, durations in plans.items():
            ts.append((yield from spawn(worker, durations, name=name)))
        for t in ts:
            yield from t.join()

    return main


def test_virtual_clock_gives_the_same_steps_twice():
    runs = []
    for _ in range(2):
        clock = VirtualClock()
        rec = StepRecorder(clock)
        run(sleepy_program(), clock=clock, instruments=[rec])
        runs.append(rec.steps)
    assert runs[0] == runs[1]
    assert len(runs[0]) > 40
    # and the steps happen at the instants the program asked for
    a_times = [t for t, name in runs[0] if name == "a"]
    assert a_times == [0, 1, 1, 3, 3, 6, 6, 6.5, 6.5]
    assert max(t for t, _ in runs[0]) == 6.5


def test_virtual_clock_does_not_jump_while_a_task_on_main_is_runnable():
    clock = VirtualClock()
    seen = []

    def busy():
        for _ in range(500):
            seen.append(clock.now())
            yield

    def sleeper():
        yield from sleep(5)
        return clock.now()

    def main():
        s = yield from spawn(sleeper)
        b = yield from spawn(busy)
        yield from b.join()
        return (yield from s.join())

    assert run(main, clock=clock) == 5
    assert set(seen) == {0}


@pytest.mark.concurrency
def test_virtual_clock_does_not_jump_while_a_worker_task_is_runnable():
    clock = VirtualClock()
    seen = []

    def busy():
        for _ in range(500):
            seen.append(clock.now())
            yield

    def sleeper():
        yield from sleep(5)
        return clock.now()

    def main():
        s = yield from spawn(sleeper)
        b = yield from spawn(busy, dispatcher=Dispatchers.Default)
        yield from b.join()
        return (yield from s.join())

    assert run(main, clock=clock) == pytest.approx(5)
    assert len(seen) == 500
    assert max(seen) < 5                       # no jump to the timer while busy


@pytest.mark.concurrency
def test_virtual_time_stands_still_while_a_worker_task_is_runnable():
    clock = VirtualClock()
    seen = []

    def busy():
        for _ in range(500):
            seen.append(clock.now())
            yield

    def sleeper():
        yield from sleep(5)

    def main():
        yield from spawn(sleeper)
        b = yield from spawn(busy, dispatcher=Dispatchers.Default)
        yield from b.join()
        return clock.now()

    assert run(main, clock=clock) == 0
    assert set(seen) == {0}


@pytest.mark.concurrency
def test_virtual_clock_jumps_while_tasks_wait_on_events_queues_and_joins():
    clock = VirtualClock()
    ev = Event()
    q = Queue()

    def on_default():
        yield from ev.wait()
        item = yield from q.get()
        return item, clock.now(), threading.current_thread().name

    def main():
        w = yield from spawn(on_default, dispatcher=Dispatchers.Default)
        yield from sleep(3600)
        ev.set()
        yield from sleep(60)
        yield from q.put("late")
        return (yield from w.join())

    start = time.monotonic()
    item, at, name = run(main, clock=clock)
    assert time.monotonic() - start < 1.0
    assert item == "late" and at == 3660
    assert name.startswith("genloop-Default-")


@pytest.mark.concurrency
def test_virtual_clock_does_not_jump_during_a_blocking_call_on_io():
    """A thread busy in a plain call counts as running: timers wait for it.

    The call returns only once Main has chosen to poll (for real) instead of
    jumping to the sleeper's timer; it then checks, still inside the call,
    that time has not moved to the timer and the sleeper still sleeps.
    """
    clock = VirtualClock()
    polled = threading.Event()
    seen = {}

    class Polls(Instrument):
        def before_poll(self, timeout):
            if timeout is None or timeout > 0:    # a real, blocking poll
                polled.set()

    def blocking(sleeper):
        assert polled.wait(DEADLINE), "Main never polled while the call was running"
        return clock.now(), sleeper.done

    def sleeper():
        yield from sleep(3600)
        seen["woke at"] = clock.now()

    def main():
        s = yield from spawn(sleeper)
        yield from checkpoint()                      # the sleeper arms its timer first
        during = yield from with_context(Dispatchers.IO, blocking, s)
        yield from s.join()
        return during

    (now_during, done_during) = run(main, clock=clock, instruments=[Polls()])
    assert now_during < 3600
    assert done_during is False
    assert seen["woke at"] == pytest.approx(3600)


@pytest.mark.concurrency
def test_virtual_clock_does_not_jump_when_a_worker_hands_a_task_to_main():
    """Forces the interleaving with a profile hook on Main: Main is held at the start of the IO
    pool's idle() check until the IO call has returned (handing main back to Main) and its
    worker has gone idle."""
    from genloop.kernel.pools import ThreadPool

    clock = VirtualClock()
    in_call = threading.Event()
    at_check = threading.Event()

    def profiler(frame, event, arg):
        if (event == "call" and frame.f_code.co_name == "idle" and in_call.is_set()
                and not at_check.is_set() and isinstance(frame.f_locals.get("self"), ThreadPool)):
            pool = frame.f_locals["self"]
            at_check.set()
            wait_until(lambda: not pool.queue and pool.idle_count == len(pool.threads))

    nudge = Event()

    def blocking():
        in_call.set()
        nudge.set()                                  # wakes Main, which then checks idle()
        at_check.wait(DEADLINE)
        return clock.now()

    def sleeper():
        yield from sleep(3600)

    def main():
        s = yield from spawn(sleeper)
        yield from spawn(nudge.wait)
        yield from checkpoint()
        during = yield from with_context(Dispatchers.IO, blocking)
        after = clock.now()
        was_done = s.done
        s.cancel()
        return during, after, was_done

    sys.setprofile(profiler)
    try:
        during, after, was_done = run(main, clock=clock, slow_step=None)
    finally:
        sys.setprofile(None)
    assert at_check.is_set(), "the interleaving was not reached"
    assert during < 1
    assert after < 3600 and not was_done, f"the clock jumped to {after} while main was runnable"


@pytest.mark.concurrency
def test_virtual_clock_does_not_jump_while_a_task_runs_on_a_pool_created_meanwhile():
    """Forces the interleaving with a profile hook on Main: Main is held at the start of the
    Default pool's idle() check until a Default task has spawned onto a brand-new dispatcher
    and ended. The new task then reads the clock once Main has made its decision (its next
    tick()); it is running, so time must not have jumped to the sleeper's timer."""
    from genloop.kernel.pools import ThreadPool

    clock = VirtualClock()
    fresh = Dispatcher("Fresh", threads=1)
    in_spawner = threading.Event()
    at_check = threading.Event()
    late_started = threading.Event()
    decided = threading.Event()
    nudge = Event()
    late_done = Event()
    seen = {}

    def profiler(frame, event, arg):
        if event != "call":
            return
        name = frame.f_code.co_name
        if (name == "idle" and in_spawner.is_set() and not at_check.is_set()
                and isinstance(frame.f_locals.get("self"), ThreadPool)):
            pool = frame.f_locals["self"]
            at_check.set()
            wait_until(lambda: late_started.is_set() and not pool.queue
                       and pool.idle_count == len(pool.threads))
        elif name == "tick" and at_check.is_set() and not decided.is_set():
            decided.set()

    def late():
        late_started.set()
        decided.wait(DEADLINE)
        seen["late ran at"] = clock.now()
        late_done.set()
        yield

    def spawner():
        in_spawner.set()
        nudge.set()                                  # wakes Main, which then checks the pools
        at_check.wait(DEADLINE)
        yield from spawn(late, dispatcher=fresh)

    def sleeper():
        yield from sleep(3600)

    def main():
        s = yield from spawn(sleeper)
        yield from spawn(nudge.wait)
        yield from checkpoint()
        yield from spawn(spawner, dispatcher=Dispatchers.Default)
        yield from late_done.wait()
        s.cancel()

    sys.setprofile(profiler)
    try:
        run(main, clock=clock, slow_step=None)
    finally:
        sys.setprofile(None)
    assert at_check.is_set() and decided.is_set(), "the interleaving was not reached"
    assert seen["late ran at"] < 3600, "the clock jumped while a task was running on Fresh"


def test_virtual_clock_starts_where_told():
    clock = VirtualClock(start=1000.0)

    def main():
        yield from sleep(5)
        return clock.now()

    assert run(main, clock=clock) == 1005


def test_checkpoint_heavy_task_and_timer_interleave_in_order():
    clock = VirtualClock()
    log = []

    def ticker():
        for i in range(3):
            yield from sleep(1)
            log.append(("tick", clock.now()))

    def main():
        t = yield from spawn(ticker)
        for _ in range(100):
            yield from checkpoint()
        log.append(("main done spinning", clock.now()))
        yield from t.join()
        me = yield from current_task()
        return me.name

    run(main, clock=clock)
    assert log == [("main done spinning", 0), ("tick", 1), ("tick", 2), ("tick", 3)]


@pytest.mark.concurrency
def test_timer_added_by_a_worker_as_main_goes_to_sleep_is_not_lost():
    """Forces the interleaving: Main is held at the start of its try_sleep() (via a profile
    hook on this thread) until a Default task has added its timer."""
    at_window = threading.Event()
    timer_added = threading.Event()
    armed = threading.Event()
    root = {}

    class AfterStep(Instrument):
        def after_step(self, task, trap):
            if task.name == "sleeper" and trap is not None:
                timer_added.set()

    def profiler(frame, event, arg):
        if (event == "call" and frame.f_code.co_name == "try_sleep" and armed.is_set()
                and not at_window.is_set()):
            at_window.set()
            timer_added.wait(DEADLINE)

    def sleeper():
        assert at_window.wait(DEADLINE), "Main never reached try_sleep"
        yield from sleep(0.01)
        return "woke"

    def main():
        root["t"] = yield from current_task()
        armed.set()
        t = yield from spawn(sleeper, dispatcher=Dispatchers.Default, name="sleeper")
        return (yield from t.join())

    def rescue():
        # if Main sleeps forever, wake it by cancelling main, so the test fails instead of hanging
        if not finished.wait(0.5):
            root["t"].cancel()

    finished = threading.Event()
    helper = PlainThread(rescue)
    sys.setprofile(profiler)
    try:
        result = run(main, instruments=[AfterStep()], slow_step=None)
    except Cancelled:
        result = "main had to be cancelled: the timer was lost"
    finally:
        sys.setprofile(None)
        finished.set()
        helper.join()
    assert result == "woke"
