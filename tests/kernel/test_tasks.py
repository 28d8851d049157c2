"""spawn, Task and its attributes, join, current_task, checkpoints, bad yields, error logging."""
import logging
import threading

import pytest

from genloop.kernel import Cancelled, Dispatchers, Event, Task, checkpoint, current_task, run, sleep, spawn
from tests.kernel.kernel_helpers import until


class Boom(Exception):
    pass


# -- spawn and Task attributes --------------------------------------------------------------

def test_spawn_returns_a_task_with_id_name_and_result():
    def child(x):
        yield
        return x * 2

    def main():
        t = yield from spawn(child, 21, name="doubler")
        assert isinstance(t, Task)
        assert t.name == "doubler"
        assert t.done is False
        assert (yield from t.join()) == 42
        assert t.done is True
        assert t.result == 42
        assert t.exception is None
        return t

    t = run(main)
    assert t.state == "done"


def test_default_name_is_the_function_name():
    def some_worker():
        yield

    def main():
        t = yield from spawn(some_worker)
        yield from t.join()
        return t.name

    assert run(main).endswith("some_worker")


def test_task_ids_are_distinct():
    def child():
        yield

    def main():
        me = yield from current_task()
        ts = []
        for _ in range(10):
            ts.append((yield from spawn(child)))
        for t in ts:
            yield from t.join()
        return [me.id] + [t.id for t in ts]

    ids = run(main)
    assert len(set(ids)) == len(ids) == 11


def test_task_states_over_its_life():
    ev = Event()
    seen = {}

    def child():
        seen["running"] = (yield from current_task()).state
        yield from ev.wait()
        return "ok"

    def main():
        t = yield from spawn(child)
        seen["spawned"] = t.state
        yield from until(lambda: t.state == "waiting", what="child waiting on the event")
        seen["waiting"] = t.state
        ev.set()
        yield from t.join()
        seen["done"] = t.state

    run(main)
    assert seen["spawned"] in ("new", "ready")
    assert seen["running"] == "running"
    assert seen["waiting"] == "waiting"
    assert seen["done"] == "done"


def test_failed_task_keeps_its_exception():
    def child():
        yield
        raise Boom("kept")

    def main():
        t = yield from spawn(child)
        with pytest.raises(Boom, match="kept"):
            yield from t.join()
        return t

    t = run(main)
    assert t.done and isinstance(t.exception, Boom) and t.result is None


def test_join_of_an_already_finished_task():
    def child():
        return "early"
        yield  # pragma: no cover

    def main():
        t = yield from spawn(child)
        yield from until(lambda: t.done, what="child done")
        return (yield from t.join())

    assert run(main) == "early"


def test_join_re_raises_for_every_joiner():
    ev = Event()

    def child():
        yield from ev.wait()
        raise Boom("for all")

    def joiner(t):
        try:
            yield from t.join()
        except Boom as e:
            return str(e)

    def main():
        t = yield from spawn(child)
        js = []
        for _ in range(3):
            js.append((yield from spawn(joiner, t)))
        yield from until(lambda: all(j.state == "waiting" for j in js), what="joiners parked")
        ev.set()
        results = []
        for j in js:
            results.append((yield from j.join()))
        return results

    assert run(main) == ["for all"] * 3


def test_join_of_a_cancelled_task_raises_cancelled():
    def child():
        yield from sleep(3600)

    def main():
        t = yield from spawn(child)
        yield from until(lambda: t.state == "waiting", what="child asleep")
        t.cancel()
        with pytest.raises(Cancelled):
            yield from t.join()
        return t

    t = run(main)
    assert t.cancelled
    assert isinstance(t.exception, Cancelled)


def test_join_from_another_dispatcher():
    def child():
        yield from sleep(0.001)
        return threading.current_thread().name

    def joiner(t):
        value = yield from t.join()
        return value, threading.current_thread().name

    def main():
        t = yield from spawn(child)
        j = yield from spawn(joiner, t, dispatcher=Dispatchers.Default)
        return (yield from j.join())

    child_thread, joiner_thread = run(main)
    assert child_thread == "MainThread"
    assert joiner_thread.startswith("genloop-Default-")


# -- spawn's dispatcher default -------------------------------------------------------------

def test_spawn_defaults_to_the_parents_dispatcher():
    def grandchild():
        me = yield from current_task()
        return me.dispatcher, threading.current_thread().name

    def child():
        t = yield from spawn(grandchild)
        return (yield from t.join())

    def main():
        on_main = yield from spawn(child)
        on_default = yield from spawn(child, dispatcher=Dispatchers.Default)
        return (yield from on_main.join()), (yield from on_default.join())

    (d1, thread1), (d2, thread2) = run(main)
    assert d1 is Dispatchers.Main and thread1 == "MainThread"
    assert d2 is Dispatchers.Default and thread2.startswith("genloop-Default-")


# -- current_task, checkpoints ---------------------------------------------------------------

def test_current_task_is_the_spawned_task():
    def child():
        return (yield from current_task())

    def main():
        t = yield from spawn(child)
        assert (yield from t.join()) is t
        me = yield from current_task()
        assert me is not t and me.done is False

    run(main)


@pytest.mark.parametrize("how", ["checkpoint", "bare yield", "sleep(0)"])
def test_checkpoints_let_other_tasks_run(how):
    order = []

    def let_others_run():
        if how == "checkpoint":
            yield from checkpoint()
        elif how == "bare yield":
            yield
        else:
            yield from sleep(0)

    def worker(tag):
        for i in range(3):
            order.append((tag, i))
            yield from let_others_run()

    def main():
        a = yield from spawn(worker, "a")
        b = yield from spawn(worker, "b")
        yield from a.join()
        yield from b.join()

    run(main)
    assert order == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_a_task_without_checkpoints_runs_to_its_end_in_one_step():
    order = []

    def greedy(tag):
        for i in range(3):
            order.append((tag, i))
        return
        yield  # pragma: no cover

    def main():
        a = yield from spawn(greedy, "a")
        b = yield from spawn(greedy, "b")
        yield from a.join()
        yield from b.join()

    run(main)
    assert order == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]


# -- yielding something that is not a trap --------------------------------------------------

@pytest.mark.parametrize("bad", [42, "a string", 3.5, object()], ids=["int", "str", "float", "object"])
def test_yielding_a_non_trap_throws_type_error_into_the_task(bad):
    def child():
        try:
            yield bad
        except TypeError as e:
            message = str(e)
        # the task survives the mistake and can go on using the kernel
        yield from sleep(0)
        return message

    def main():
        t = yield from spawn(child)
        return (yield from t.join())

    message = run(main)
    assert repr(bad) in message


def test_uncaught_non_trap_type_error_ends_the_task():
    def child():
        yield 42

    def main():
        t = yield from spawn(child)
        with pytest.raises(TypeError, match="42"):
            yield from t.join()

    run(main)


# -- errors of tasks nobody joins ---------------------------------------------------------

def test_unjoined_task_exception_is_logged_with_traceback_not_raised_in_parent(caplog):
    def doomed():
        yield
        raise Boom("nobody-joins-me-123")

    def main():
        t = yield from spawn(doomed, name="doomed-task")
        yield from until(lambda: t.done, what="doomed task ended")
        yield from sleep(0)
        return "parent fine", t

    with caplog.at_level(logging.ERROR, logger="genloop"):
        value, t = run(main)
    assert value == "parent fine"
    assert isinstance(t.exception, Boom)
    records = [r for r in caplog.records if r.name == "genloop" and r.levelno >= logging.ERROR]
    assert len(records) == 1, [r.getMessage() for r in records]
    text = records[0].getMessage() + (records[0].exc_text or "")
    assert "doomed-task" in text
    assert "nobody-joins-me-123" in text
    assert "Traceback (most recent call last)" in text
    assert 'raise Boom("nobody-joins-me-123")' in text   # the traceback shows the source line


def test_unjoined_failure_on_a_worker_is_logged_too(caplog):
    def doomed():
        yield
        raise Boom("on-default")

    def main():
        t = yield from spawn(doomed, dispatcher=Dispatchers.Default)
        yield from until(lambda: t.done, what="doomed task ended")
        return "parent fine"

    with caplog.at_level(logging.ERROR, logger="genloop"):
        assert run(main) == "parent fine"
    assert any("on-default" in r.getMessage() + (r.exc_text or "") for r in caplog.records)


def test_joined_failure_is_not_logged(caplog):
    def child():
        yield
        raise Boom("joined")

    def main():
        t = yield from spawn(child)
        with pytest.raises(Boom):
            yield from t.join()

    with caplog.at_level(logging.ERROR, logger="genloop"):
        run(main)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_unjoined_cancelled_task_is_not_logged_as_an_error(caplog):
    def child():
        yield from sleep(3600)

    def main():
        t = yield from spawn(child)
        yield from until(lambda: t.state == "waiting", what="child asleep")
        t.cancel()
        yield from until(lambda: t.done, what="child cancelled")

    with caplog.at_level(logging.ERROR, logger="genloop"):
        run(main)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_spawning_a_plain_function_raises_type_error_in_the_spawner():
    def not_a_generator():
        return 1

    def main():
        with pytest.raises(TypeError):
            yield from spawn(not_a_generator)
        return "spawner survived"

    assert run(main) == "spawner survived"
