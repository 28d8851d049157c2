"""Main-confined state: a task on Main is touched by Main alone, other threads hand over.

The wait state and the watchers of a task on Main take no lock; ``cancel``,
``join`` and a ``with_context`` from another thread reach them through
``MainPool.call_soon``. These tests drive every hand-over from worker and
plain threads, and the moves between Main and a pool that switch the rule.
"""
import threading

import pytest

from genloop.kernel import (
    Cancelled,
    Dispatchers,
    Event,
    checkpoint,
    current_task,
    run,
    sleep,
    spawn,
    switch_to,
    with_context,
)
from tests.kernel.kernel_helpers import DEADLINE, until

pytestmark = pytest.mark.concurrency


def gather_joins(tasks):
    results = []
    for t in tasks:
        results.append((yield from t.join()))
    return results


def test_tasks_on_default_join_a_task_on_main():
    ev = Event()

    def on_main():
        yield from ev.wait()
        return "main's answer"

    def joiner(target):
        return (yield from target.join())

    def main():
        target = yield from spawn(on_main)
        joiners = []
        for _ in range(20):
            joiners.append((yield from spawn(joiner, target, dispatcher=Dispatchers.Default)))
        yield from until(lambda: all(j.state == "waiting" for j in joiners), what="every joiner parked")
        ev.set()
        return (yield from gather_joins(joiners))

    assert run(main) == ["main's answer"] * 20


def test_a_task_on_default_joining_a_task_on_main_is_cancelled_at_once():
    """The unwatch is handed to Main: the joiner still ends now, not when the target does."""
    ev = Event()

    def on_main():
        yield from ev.wait()
        return "done"

    def joiner(target):
        yield from target.join()

    def main():
        target = yield from spawn(on_main)
        j = yield from spawn(joiner, target, dispatcher=Dispatchers.Default)
        yield from until(lambda: j.state == "waiting", what="joiner parked")
        canceller = threading.Thread(target=j.cancel)
        canceller.start()
        canceller.join(DEADLINE)
        with pytest.raises(Cancelled):
            yield from j.join()
        assert not target.done       # cancelling a joiner leaves its target alone
        ev.set()
        return (yield from target.join())

    assert run(main) == "done"


def test_a_task_joining_a_task_that_ended_while_the_watch_was_handed_over():
    def quick():
        return "quick"
        yield

    def joiner():
        # on Default, spawn a task on Main and join it at once: the watch reaches
        # Main after the target may have ended, and Main then calls back itself
        target = yield from spawn(quick, dispatcher=Dispatchers.Main)
        return (yield from target.join())

    def main():
        joiners = []
        for _ in range(50):
            joiners.append((yield from spawn(joiner, dispatcher=Dispatchers.Default)))
        return (yield from gather_joins(joiners))

    assert run(main) == ["quick"] * 50


def test_plain_threads_cancel_tasks_on_main_exactly_once():
    caught = []

    def victim():
        try:
            yield from sleep(3600)
        except Cancelled:
            caught.append(1)
            raise

    def main():
        tasks = []
        for _ in range(20):
            tasks.append((yield from spawn(victim)))
        yield from until(lambda: all(t.state == "waiting" for t in tasks), what="victims parked")
        threads = [threading.Thread(target=lambda: [t.cancel() for t in tasks]) for _ in range(4)]
        for th in threads:
            th.start()
        for t in tasks:
            yield from t.wait_done()
        for th in threads:
            th.join(DEADLINE)
        return [t.cancelled for t in tasks]

    assert run(main) == [True] * 20
    assert len(caught) == 20


def test_cancels_race_moves_between_main_and_default():
    """A plain thread cancels tasks that keep switching between Main and Default."""
    ended = {}

    def mover(i):
        try:
            for _ in range(200):
                yield from switch_to(Dispatchers.Default)
                yield from checkpoint()
                yield from switch_to(Dispatchers.Main)
                yield from checkpoint()
            ended[i] = "finished"
        except Cancelled:
            ended[i] = "cancelled"
            raise

    def main():
        tasks = []
        for i in range(10):
            tasks.append((yield from spawn(mover, i)))
        yield from sleep(0.001)
        canceller = threading.Thread(target=lambda: [t.cancel() for t in tasks])
        canceller.start()
        for t in tasks:
            yield from t.wait_done()
        canceller.join(DEADLINE)
        return {i: "cancelled" if t.cancelled else "finished" for i, t in enumerate(tasks)}

    assert run(main) == ended and len(ended) == 10


def test_with_context_on_main_from_default_returns_and_is_cancellable():
    ev = Event()

    def on_main():
        me = yield from current_task()
        assert me.dispatcher is Dispatchers.Main
        yield from ev.wait()
        return "from Main"

    def caller():
        return (yield from with_context(Dispatchers.Main, on_main))

    def main():
        ok = yield from spawn(caller, dispatcher=Dispatchers.Default)
        yield from until(lambda: ok.state == "waiting", what="caller parked")
        ev.set()
        assert (yield from ok.join()) == "from Main"
        ev.clear()
        stuck = yield from spawn(caller, dispatcher=Dispatchers.Default)
        yield from until(lambda: stuck.state == "waiting", what="second caller parked")
        stuck.cancel()
        with pytest.raises(Cancelled):
            yield from stuck.join()

    run(main)


def _parked(slot):
    """Park until woken; ``slot`` gets the task, for the waker."""
    from genloop.kernel.traps import PARKED, park

    def arm(task):
        slot.append(task)
        return PARKED

    return (yield from park(arm, lambda task: slot.remove(task) or True, "waits for a test's wake_here"))


@pytest.mark.parametrize("dispatcher", [None, Dispatchers.Default], ids=["on-main", "on-default"])
def test_wake_here_from_main_resumes_a_task_on_main_or_falls_back_to_wake(dispatcher):
    """A waker on Main wakes a task on Main without the thread check; a task elsewhere goes through wake."""
    slot = []

    def main():
        t = yield from spawn(_parked, slot, dispatcher=dispatcher)
        yield from until(lambda: slot and t.state == "waiting", what="the task parked")
        slot.pop().wake_here("woken")
        return (yield from t.join())

    assert run(main) == "woken"


def test_wake_here_wakes_many_tasks_on_main_in_order():
    slots = [[] for _ in range(50)]

    def main():
        tasks = []
        for s in slots:
            tasks.append((yield from spawn(_parked, s)))
        yield from until(lambda: all(s for s in slots), what="every task parked")
        for i, s in enumerate(slots):
            s.pop().wake_here(i)
        return (yield from gather_joins(tasks))

    assert run(main) == list(range(50))
