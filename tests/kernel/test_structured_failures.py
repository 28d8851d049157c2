"""TaskGroup and gather lose no failure: ExceptionGroup, cancelled bodies, unjoined groups, late children."""
import logging

import pytest

from genloop.kernel import Cancelled, Dispatchers, Event, TaskGroup, VirtualClock, gather, run, sleep, spawn
from tests.kernel.kernel_helpers import until


class Boom(Exception):
    pass


def fail_after(seconds, message):
    yield from sleep(seconds)
    raise Boom(message)


def forever():
    yield from Event().wait()


def errors_logged(caplog):
    return [r for r in caplog.records if r.levelname == "ERROR"]


# -- what join raises --------------------------------------------------------------------------

def test_several_failures_raise_one_exception_group_that_except_star_catches():
    clock = VirtualClock()

    def stubborn(message):
        try:
            yield from forever()
        finally:
            raise Boom(message)          # fails while being cancelled by the first failure

    def main():
        group = TaskGroup()
        yield from group.spawn(fail_after, 1, "first")
        yield from group.spawn(stubborn, "second")
        caught = []
        try:
            yield from group.join()
        except* Boom as eg:
            caught = [str(e) for e in eg.exceptions]
        return caught

    assert run(main, clock=clock) == ["first", "second"]


def test_one_failure_is_an_exception_group_too():
    def main():
        group = TaskGroup()
        yield from group.spawn(fail_after, 0, "only")
        with pytest.raises(ExceptionGroup) as info:
            yield from group.join()
        (only,) = info.value.exceptions
        assert isinstance(only, Boom) and str(only) == "only"

    run(main, clock=VirtualClock())


# -- the group's body is cancelled --------------------------------------------------------------

def test_a_failing_child_cancels_the_body_and_join_reports_why():
    clock = VirtualClock()
    seen = []

    def main():
        group = TaskGroup()
        yield from group.spawn(fail_after, 1, "child")
        try:
            yield from sleep(100)          # the body's own work: cut short at t=1
            seen.append("slept")
        except Cancelled:
            seen.append(("cancelled at", clock.now()))
        with pytest.raises(ExceptionGroup):
            yield from group.join()
        yield from sleep(1)                # the group's cancellation was taken back: waits work
        return "went on"

    assert run(main, clock=clock) == "went on"
    assert seen == [("cancelled at", 1)]


def test_the_body_cancelled_by_its_group_ends_with_the_failures_not_with_cancelled():
    clock = VirtualClock()

    def body():
        group = TaskGroup()
        yield from group.spawn(fail_after, 1, "child")
        yield from sleep(100)              # Cancelled here goes up, join is never reached

    def main():
        t = yield from spawn(body)
        with pytest.raises(ExceptionGroup) as info:
            yield from t.join()
        assert [str(e) for e in info.value.exceptions] == ["child"]
        assert not t.cancelled

    run(main, clock=clock)


@pytest.mark.concurrency
def test_a_failing_child_on_default_cancels_a_body_on_main():
    def main():
        group = TaskGroup()
        gate = Event()
        yield from group.spawn(lambda: (yield from gate.wait()) or (yield from fail_after(0, "worker")),
                               dispatcher=Dispatchers.Default)
        gate.set()
        with pytest.raises(Cancelled):
            yield from forever()
        with pytest.raises(ExceptionGroup):
            yield from group.join()

    run(main)


# -- groups never joined -------------------------------------------------------------------------

def test_a_body_that_returns_without_joining_raises_its_groups_failure():
    clock = VirtualClock()

    def body():
        group = TaskGroup()
        yield from group.spawn(fail_after, 0, "unjoined")
        yield from sleep(1)
        return "forgot to join"

    def main():
        t = yield from spawn(body)
        with pytest.raises(ExceptionGroup) as info:
            yield from t.join()
        assert [str(e) for e in info.value.exceptions] == ["unjoined"]

    run(main, clock=clock)


def test_a_body_that_raises_first_raises_both_failures():
    clock = VirtualClock()

    def body():
        group = TaskGroup()
        yield from group.spawn(fail_after, 0, "child")
        try:
            yield from sleep(1)
        except Cancelled:
            raise ValueError("body") from None

    def main():
        t = yield from spawn(body)
        with pytest.raises(ExceptionGroup) as info:
            yield from t.join()
        assert sorted(str(e) for e in info.value.exceptions) == ["body", "child"]

    run(main, clock=clock)


def test_a_failure_after_the_body_ended_is_logged(caplog):
    clock = VirtualClock()
    group = TaskGroup()

    def body():
        yield from group.spawn(fail_after, 5, "late")
        return "left early"                # not joined, children still running

    def main():
        t = yield from spawn(body)
        assert (yield from t.join()) == "left early"
        yield from sleep(10)

    with caplog.at_level(logging.ERROR, logger="genloop"):
        run(main, clock=clock)
    (record,) = errors_logged(caplog)
    assert "nobody is joining" in record.getMessage() and "late" in record.getMessage()


def test_the_unjoined_failure_of_main_is_raised_by_run():
    def main():
        group = TaskGroup()
        yield from group.spawn(fail_after, 0, "lost?")
        yield from sleep(1)

    with pytest.raises(ExceptionGroup):
        run(main, clock=VirtualClock())


# -- failures while the joiner is cancelled -----------------------------------------------------

def test_a_child_failing_while_the_joiner_is_cancelled_is_not_dropped():
    children = []

    def child():
        try:
            yield from forever()
        finally:
            raise Boom("in cleanup")

    def parent():
        group = TaskGroup()
        children.append((yield from group.spawn(child)))
        yield from group.join()

    def main():
        p = yield from spawn(parent)
        yield from until(lambda: p.state == "waiting" and children and children[0].state == "waiting",
                         what="parent in join, child parked")
        p.cancel()
        with pytest.raises(ExceptionGroup) as info:
            yield from p.join()
        assert [str(e) for e in info.value.exceptions] == ["in cleanup"]

    run(main)


# -- a failed group takes no more work ----------------------------------------------------------

def test_a_child_spawned_into_a_failed_group_is_cancelled_before_it_runs():
    clock = VirtualClock()
    ran = []

    def late():
        ran.append("late")
        yield from sleep(1)
        ran.append("late finished")

    def main():
        group = TaskGroup()
        yield from group.spawn(fail_after, 1, "first")
        try:
            yield from sleep(2)
        except Cancelled:
            pass
        t = yield from group.spawn(late)     # the group failed at t=1
        with pytest.raises(Exception):       # noqa: B017 - what it raises is tested above
            yield from group.join()
        return t.cancelled

    assert run(main, clock=clock) is True
    assert ran == []


def test_a_child_spawning_into_its_failed_group_gets_a_cancelled_task():
    clock = VirtualClock()
    ran = []

    def grandchild():
        ran.append("grandchild")
        yield

    def sibling(group):
        try:
            yield from sleep(10)
        finally:
            t = yield from group.spawn(grandchild)   # cleanup spawning into the failed group
            ran.append(("spawned", t.state))

    def main():
        group = TaskGroup()
        yield from group.spawn(sibling, group)
        yield from group.spawn(fail_after, 1, "first")
        with pytest.raises(Exception):       # noqa: B017 - what it raises is tested above
            yield from group.join()

    run(main, clock=clock)
    assert "grandchild" not in ran


def test_a_cancelled_group_cancels_children_spawned_afterwards():
    ran = []

    def child():
        ran.append("child")
        yield

    def main():
        group = TaskGroup()
        group.cancel()
        t = yield from group.spawn(child)
        yield from group.join()          # a cancellation is no failure
        return t.cancelled

    assert run(main) is True
    assert ran == []


# -- gather ------------------------------------------------------------------------------------

def test_gather_raises_cancelled_for_a_child_cancelled_from_outside():
    clock = VirtualClock()
    tasks = []

    def value(x, delay):
        tasks.append((yield from current()))
        yield from sleep(delay)
        return x

    def current():
        from genloop.kernel import current_task
        return (yield from current_task())

    def killer():
        yield from sleep(1)
        tasks[1].cancel()

    def main():
        yield from spawn(killer)
        with pytest.raises(Cancelled):
            yield from gather(value(1, 3), value(2, 3), value(3, 3))
        return clock.now(), [t.cancelled for t in tasks]

    now, cancelled = run(main, clock=clock)
    assert now == 1                                  # it did not wait for the others ...
    assert cancelled == [True, True, True]           # ... it cancelled them


def test_gather_raises_the_first_failure_itself():
    def main():
        with pytest.raises(Boom, match="first"):
            yield from gather(fail_after(1, "first"), fail_after(2, "second"))

    run(main, clock=VirtualClock())
