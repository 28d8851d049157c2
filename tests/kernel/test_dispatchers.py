"""Dispatchers: where tasks run. Main, Default, IO, Unconfined, custom pools, limited(n),
with_context and switch_to."""
import threading

import pytest

from genloop.kernel import Dispatcher, Dispatchers, Event, current_task, run, sleep, spawn, switch_to, with_context
from tests.kernel.kernel_helpers import DEADLINE, thread_names, until


def here():
    return threading.current_thread().name


def test_default_tasks_run_on_default_threads():
    def child():
        yield from sleep(0)
        first = here()
        yield from sleep(0.001)
        return first, here(), (yield from current_task()).dispatcher

    def main():
        t = yield from spawn(child, dispatcher=Dispatchers.Default)
        return (yield from t.join())

    first, second, dispatcher = run(main)
    assert first.startswith("genloop-Default-")
    assert second.startswith("genloop-Default-")
    assert dispatcher is Dispatchers.Default


@pytest.mark.concurrency
def test_default_threads_option_sizes_the_default_pool():
    gate = threading.Event()
    names = set()
    guard = threading.Lock()

    def child():
        with guard:
            names.add(here())
        gate.wait(DEADLINE)
        yield

    def main():
        ts = []
        for _ in range(6):
            ts.append((yield from spawn(child, dispatcher=Dispatchers.Default)))
        # threads start when work is queued: 6 blocked tasks would start 6 if allowed
        assert len(thread_names("genloop-Default-")) == 3
        yield from until(lambda: len(names) == 3, what="three Default threads busy")
        gate.set()
        for t in ts:
            yield from t.join()

    run(main, default_threads=3)
    assert len(names) == 3


def test_io_threads_start_lazily():
    def blocking():
        return here()

    def main():
        yield from sleep(0)
        before = thread_names("genloop-IO-")
        name = yield from with_context(Dispatchers.IO, blocking)
        return before, name, thread_names("genloop-IO-")

    before, name, after = run(main)
    assert before == []
    assert name.startswith("genloop-IO-")
    assert name in after


def test_default_threads_start_lazily_too():
    def main():
        yield from sleep(0)
        return thread_names("genloop-")

    assert [n for n in run(main) if n != "genloop-watchdog"] == []


# -- with_context ------------------------------------------------------------------------------

@pytest.mark.parametrize("target, prefix", [
    (Dispatchers.Default, "genloop-Default-"),
    (Dispatchers.IO, "genloop-IO-"),
], ids=["Default", "IO"])
def test_with_context_plain_call_runs_on_the_target_and_resumes_on_main(target, prefix):
    def blocking(a, b):
        return here(), a + b

    def main():
        ran_on, value = yield from with_context(target, blocking, 1, 2)
        return ran_on, value, here()

    ran_on, value, back_on = run(main)
    assert ran_on.startswith(prefix)
    assert value == 3
    assert back_on == "MainThread"


def test_with_context_from_a_worker_resumes_on_its_own_dispatcher():
    def blocking():
        return here()

    def child():
        before = here()
        on_io = yield from with_context(Dispatchers.IO, blocking)
        on_main = yield from with_context(Dispatchers.Main, blocking)
        return before, on_io, on_main, here()

    def main():
        t = yield from spawn(child, dispatcher=Dispatchers.Default)
        return (yield from t.join())

    before, on_io, on_main, after = run(main)
    assert before.startswith("genloop-Default-")
    assert on_io.startswith("genloop-IO-")
    assert on_main == "MainThread"
    assert after.startswith("genloop-Default-")


def test_with_context_generator_runs_as_a_coroutine_on_the_target():
    def coro(x):
        me = yield from current_task()
        first = here()
        yield from sleep(0.001)              # it can suspend: it is a task there
        return me, me.dispatcher, first, here(), x * 10

    def main():
        caller = yield from current_task()
        me, dispatcher, first, second, value = yield from with_context(Dispatchers.Default, coro, 4)
        return caller, me, dispatcher, first, second, value, here()

    caller, me, dispatcher, first, second, value, back = run(main)
    assert me is not caller
    assert dispatcher is Dispatchers.Default
    assert first.startswith("genloop-Default-") and second.startswith("genloop-Default-")
    assert value == 40
    assert back == "MainThread"


def test_with_context_re_raises_the_exception():
    def blocking():
        raise KeyError("inside")

    def coro():
        yield
        raise ValueError("inside coro")

    def main():
        with pytest.raises(KeyError):
            yield from with_context(Dispatchers.IO, blocking)
        with pytest.raises(ValueError, match="inside coro"):
            yield from with_context(Dispatchers.Default, coro)
        assert here() == "MainThread"

    run(main)


# -- switch_to ---------------------------------------------------------------------------------

def test_switch_to_moves_the_task_for_good():
    def grandchild():
        yield
        return (yield from current_task()).dispatcher

    def main():
        me = yield from current_task()
        log = [here()]
        yield from switch_to(Dispatchers.Default)
        log.append(here())
        yield from sleep(0.001)
        log.append(here())
        assert me.dispatcher is Dispatchers.Default
        t = yield from spawn(grandchild)         # spawn now defaults to the new dispatcher
        log.append((yield from t.join()))
        yield from switch_to(Dispatchers.Main)
        log.append(here())
        return log

    log = run(main)
    assert log[0] == "MainThread"
    assert log[1].startswith("genloop-Default-")
    assert log[2].startswith("genloop-Default-")
    assert log[3] is Dispatchers.Default
    assert log[4] == "MainThread"


# -- Unconfined ----------------------------------------------------------------------------------

def test_unconfined_resumes_on_the_thread_that_woke_it():
    solo = Dispatcher("Solo", threads=1)
    ev_from_solo = Event()
    ev_from_main = Event()
    log = []

    def unconfined():
        log.append(("start", here()))
        yield from ev_from_solo.wait()
        log.append(("woken by Solo", here()))
        yield from ev_from_main.wait()
        log.append(("woken by Main", here()))
        yield from sleep(0.001)                 # timers fire on Main
        log.append(("woken by a timer", here()))

    def setter():
        ev_from_solo.set()
        yield

    def main():
        u = yield from spawn(unconfined, dispatcher=Dispatchers.Unconfined)
        yield from until(lambda: u.state == "waiting", what="unconfined parked")
        s = yield from spawn(setter, dispatcher=solo)
        yield from s.join()
        yield from until(lambda: len(log) == 2 and u.state == "waiting", what="second wait")
        ev_from_main.set()
        yield from u.join()

    run(main)
    assert log == [
        ("start", "MainThread"),
        ("woken by Solo", "genloop-Solo-1"),
        ("woken by Main", "MainThread"),
        ("woken by a timer", "MainThread"),
    ]


# -- custom dispatchers and limited(n) ---------------------------------------------------------

@pytest.mark.concurrency
def test_custom_dispatcher_uses_at_most_n_threads_of_its_name():
    pair = Dispatcher("Pair", threads=2)
    gate = threading.Event()
    guard = threading.Lock()
    names = set()
    state = {"running": 0, "peak": 0}

    def blocking_task():
        with guard:
            names.add(here())
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
        gate.wait(DEADLINE)
        with guard:
            state["running"] -= 1
        yield

    def main():
        ts = []
        for _ in range(5):
            ts.append((yield from spawn(blocking_task, dispatcher=pair)))
        # every push has happened: a pool without a cap would have started 5 threads
        assert len(thread_names("genloop-Pair-")) <= 2
        yield from until(lambda: state["running"] == 2, what="two Pair tasks running")
        assert len(thread_names("genloop-Pair-")) == 2
        gate.set()
        for t in ts:
            yield from t.join()

    run(main)
    assert names == {"genloop-Pair-1", "genloop-Pair-2"}
    assert state["peak"] == 2


@pytest.mark.concurrency
@pytest.mark.parametrize("n", [1, 2])
def test_limited_runs_at_most_n_tasks_at_once_on_the_parent_threads(n):
    limited = Dispatchers.Default.limited(n)
    guard = threading.Lock()
    state = {"running": 0, "peak": 0}
    names = set()
    # n + 1 parties: it only trips if one task more than the limit runs at once.
    # With the limit honoured it times out once, and is broken for everyone after.
    barrier = threading.Barrier(n + 1, timeout=0.3)

    def blocking_task():
        with guard:
            names.add(here())
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        with guard:
            state["running"] -= 1
        yield

    def main():
        ts = []
        for _ in range(6):
            ts.append((yield from spawn(blocking_task, dispatcher=limited)))
        for t in ts:
            yield from t.join()

    run(main, default_threads=4)
    assert state["peak"] == n
    assert all(name.startswith("genloop-Default-") for name in names)
    assert barrier.broken


def test_limited_slot_is_released_while_a_task_waits():
    """A parked task does not hold its slot: the other task of a limited(1) view runs."""
    one = Dispatchers.Default.limited(1)
    ev = Event()

    def waiter():
        yield from ev.wait()
        return here()

    def setter():
        ev.set()
        yield
        return here()

    def main():
        w = yield from spawn(waiter, dispatcher=one)
        yield from until(lambda: w.state == "waiting", what="waiter parked")
        s = yield from spawn(setter, dispatcher=one)
        return (yield from w.join()), (yield from s.join())

    a, b = run(main)
    assert a.startswith("genloop-Default-") and b.startswith("genloop-Default-")


def test_dispatcher_argument_checks():
    with pytest.raises(ValueError):
        Dispatcher("Nothing", threads=0)
    with pytest.raises(ValueError):
        Dispatchers.Default.limited(0)
    with pytest.raises(ValueError):
        Dispatchers.Main.limited(2)
    with pytest.raises(ValueError):
        Dispatchers.Unconfined.limited(2)


def test_spawn_on_something_that_is_not_a_dispatcher_fails_in_the_spawner():
    def child():
        yield

    def main():
        with pytest.raises(TypeError):
            yield from spawn(child, dispatcher="Default")
        return "survived"

    assert run(main) == "survived"


@pytest.mark.concurrency
@pytest.mark.parametrize("how", ["spawn", "wake"])
def test_default_task_made_runnable_by_a_default_task_runs_in_parallel(how):
    """A task spawned or woken by a Default task that keeps running goes to an idle Default thread.

    The first task blocks (a plain threading wait, standing for CPU work) until the
    second one has run: that only ends if Default really runs both at once.
    """
    second_ran = threading.Event()
    ev = Event()

    def second():
        if how == "wake":
            yield from ev.wait()
        second_ran.set()
        return here()
        yield  # pragma: no cover

    def first(other):
        if how == "spawn":
            other = yield from spawn(second)
        else:
            ev.set()
        ok = second_ran.wait(0.5)              # busy on this thread meanwhile
        yield
        return ok, here(), (yield from other.join())

    def main():
        other = None
        if how == "wake":
            other = yield from spawn(second, dispatcher=Dispatchers.Default)
            yield from until(lambda: other.state == "waiting", what="second parked")
        f = yield from spawn(first, other, dispatcher=Dispatchers.Default)
        return (yield from f.join())

    ok, first_thread, second_thread = run(main, default_threads=2)
    assert ok, "the second task never ran while the first one was busy"
    assert first_thread != second_thread


@pytest.mark.concurrency
def test_io_threads_option_caps_the_io_pool():
    gate = threading.Event()
    names = set()
    guard = threading.Lock()

    def blocking():
        with guard:
            names.add(here())
        gate.wait(DEADLINE)

    def main():
        ts = []
        for _ in range(5):
            ts.append((yield from spawn(with_context, Dispatchers.IO, blocking)))
        yield from until(lambda: len(names) == 2, what="two IO threads busy")
        assert len(thread_names("genloop-IO-")) == 2
        gate.set()
        for t in ts:
            yield from t.join()

    run(main, io_threads=2)
    assert len(names) == 2
