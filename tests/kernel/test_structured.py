"""gather and TaskGroup: results in order, failures cancel siblings, cancellation reaches children."""
import threading

import pytest

from genloop.kernel import Cancelled, Dispatchers, Event, TaskGroup, VirtualClock, gather, run, sleep, spawn, switch_to
from tests.kernel.kernel_helpers import until


class Boom(Exception):
    pass


# -- gather ------------------------------------------------------------------------------------

def test_gather_returns_results_in_argument_order():
    clock = VirtualClock()
    finished = []

    def work(x, delay):
        yield from sleep(delay)
        finished.append(x)
        return x * x

    def main():
        return (yield from gather(work(1, 3), work(2, 1), work(3, 2)))

    assert run(main, clock=clock) == [1, 4, 9]
    assert finished == [2, 3, 1]                # they did run concurrently ...
    assert clock.now() == 3                     # ... so it took the longest, not the sum


def test_gather_of_nothing():
    def main():
        return (yield from gather())

    assert run(main) == []


def test_gather_first_failure_cancels_the_rest_and_is_raised():
    clock = VirtualClock()
    log = []

    def slow(tag):
        try:
            yield from sleep(100)
            log.append((tag, "finished"))
        except Cancelled:
            log.append((tag, "cancelled", clock.now()))
            raise

    def failing():
        yield from sleep(1)
        raise Boom("first")

    def main():
        with pytest.raises(Boom, match="first"):
            yield from gather(slow("a"), failing(), slow("b"))
        return clock.now()

    assert run(main, clock=clock) == 1
    assert sorted(log) == [("a", "cancelled", 1), ("b", "cancelled", 1)]


@pytest.mark.concurrency
def test_gather_across_dispatchers():
    def where(tag):
        yield from sleep(0.001)
        return tag, threading.current_thread().name

    def on(dispatcher, tag):
        yield from switch_to(dispatcher)
        return (yield from where(tag))

    def main():
        return (yield from gather(on(Dispatchers.Default, "d"), where("m")))

    (t1, n1), (t2, n2) = run(main)
    assert (t1, t2) == ("d", "m")
    assert n1.startswith("genloop-Default-") and n2 == "MainThread"


# -- TaskGroup ---------------------------------------------------------------------------------

def test_task_group_waits_for_every_child():
    clock = VirtualClock()

    def child(d):
        yield from sleep(d)
        return d

    def main():
        group = TaskGroup()
        ts = []
        for d in (3, 1, 2):
            ts.append((yield from group.spawn(child, d)))
        yield from group.join()
        assert all(t.done for t in ts)
        return [t.result for t in ts], clock.now()

    assert run(main, clock=clock) == ([3, 1, 2], 3)


def test_task_group_failing_child_cancels_siblings_and_join_re_raises():
    clock = VirtualClock()
    log = []

    def sibling(tag):
        try:
            yield from sleep(100)
        finally:
            log.append((tag, clock.now()))

    def failing():
        yield from sleep(2)
        raise Boom("child failed")

    def main():
        group = TaskGroup()
        s1 = yield from group.spawn(sibling, "s1")
        yield from group.spawn(failing)
        s2 = yield from group.spawn(sibling, "s2", dispatcher=Dispatchers.Default)
        with pytest.raises(ExceptionGroup) as info:
            yield from group.join()
        assert [str(e) for e in info.value.exceptions] == ["child failed"]
        assert s1.cancelled and s2.cancelled
        return clock.now()

    assert run(main, clock=clock) == 2
    assert sorted(log) == [("s1", 2), ("s2", 2)]


def test_task_group_child_failure_is_not_logged_as_unjoined(caplog):
    def failing():
        yield
        raise Boom("structured")

    def main():
        group = TaskGroup()
        yield from group.spawn(failing)
        with pytest.raises(ExceptionGroup):
            yield from group.join()

    run(main)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_cancelling_the_joiner_cancels_the_children():
    log = []
    children = []

    def child(tag):
        try:
            yield from Event().wait()
        finally:
            log.append(("child finally", tag))

    def parent():
        group = TaskGroup()
        for tag in ("a", "b"):
            children.append((yield from group.spawn(child, tag)))
        try:
            yield from group.join()
        except Cancelled:
            # join only lets Cancelled through once the children have ended
            log.append(("parent sees", all(c.done for c in children)))
            raise

    def main():
        p = yield from spawn(parent)
        yield from until(lambda: p.state == "waiting" and len(children) == 2
                         and all(c.state == "waiting" for c in children),
                         what="parent in join, children parked")
        p.cancel()
        with pytest.raises(Cancelled):
            yield from p.join()
        assert all(c.cancelled for c in children)

    run(main)
    assert sorted(log[:2]) == [("child finally", "a"), ("child finally", "b")]
    assert log[2] == ("parent sees", True)


def test_task_group_cannot_spawn_after_join():
    def child():
        yield

    def main():
        group = TaskGroup()
        yield from group.spawn(child)
        yield from group.join()
        with pytest.raises(RuntimeError):
            yield from group.spawn(child)

    run(main)


def test_task_group_children_can_spawn_into_the_group():
    clock = VirtualClock()
    done = []

    def grandchild(group_, depth):
        yield from sleep(1)
        done.append(depth)
        if depth < 3:
            yield from group_.spawn(grandchild, group_, depth + 1)

    def main():
        group = TaskGroup()
        yield from group.spawn(grandchild, group, 0)
        yield from group.join()
        return clock.now()

    assert run(main, clock=clock) == 4
    assert done == [0, 1, 2, 3]
