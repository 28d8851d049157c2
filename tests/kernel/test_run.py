"""``run``: the entry point. Return value, exception, any thread, no nesting."""
import threading

import pytest

from genloop.kernel import Dispatchers, current_kernel, current_task, run, sleep, spawn, with_context
from tests.kernel.kernel_helpers import PlainThread


class Boom(Exception):
    pass


def test_run_returns_the_value_of_main():
    def main(a, b):
        yield from sleep(0)
        return a + b

    assert run(main, 2, 3) == 5


def test_run_accepts_a_generator_object():
    def main():
        yield
        return "object"

    assert run(main()) == "object"


def test_run_raises_the_exception_of_main():
    def main():
        yield from sleep(0)
        raise Boom("from main")

    with pytest.raises(Boom, match="from main"):
        run(main)


def test_run_propagates_a_child_failure_that_main_joins():
    def child():
        yield
        raise Boom("child")

    def main():
        t = yield from spawn(child)
        yield from t.join()

    with pytest.raises(Boom, match="child"):
        run(main)


def test_run_rejects_a_plain_function_and_stays_usable():
    with pytest.raises(TypeError):
        run(lambda: 42)
    assert current_kernel() is None

    def main():
        yield
        return "still works"

    assert run(main) == "still works"


def test_run_twice_in_a_row_on_the_same_thread():
    def main(n):
        yield from sleep(0)
        return n

    assert [run(main, i) for i in range(3)] == [0, 1, 2]


def test_main_runs_on_the_calling_thread_which_is_Main():
    def main():
        me = yield from current_task()
        yield from sleep(0.001)
        return threading.current_thread().name, me.dispatcher

    name, dispatcher = run(main)
    assert name == threading.current_thread().name == "MainThread"
    assert dispatcher is Dispatchers.Main


def test_current_kernel_is_set_only_while_running():
    seen = []

    def main():
        seen.append(current_kernel())
        yield

    assert current_kernel() is None
    run(main)
    assert seen[0] is not None
    assert current_kernel() is None


def test_run_from_a_non_main_thread():
    def blocking():
        return threading.current_thread().name

    def main():
        before = threading.current_thread().name
        worker = yield from with_context(Dispatchers.Default, blocking)
        after = threading.current_thread().name
        return before, worker, after

    th = PlainThread(run, main, name="not-the-main-thread")
    before, worker, after = th.join()
    assert before == after == "not-the-main-thread"
    assert worker.startswith("genloop-Default-")


@pytest.mark.concurrency
def test_two_kernels_on_two_threads_at_once():
    barrier = threading.Barrier(2, timeout=5)

    def main(tag):
        # Both kernels are running at this point: neither returns before the other started.
        yield from with_context(Dispatchers.IO, barrier.wait)
        yield from sleep(0.001)
        return tag, threading.current_thread().name

    a = PlainThread(run, main, "a", name="kernel-a")
    b = PlainThread(run, main, "b", name="kernel-b")
    assert a.join() == ("a", "kernel-a")
    assert b.join() == ("b", "kernel-b")


def test_run_refuses_to_nest_on_the_same_thread():
    def inner():
        yield
        return "inner ran"

    def main():
        yield
        with pytest.raises(RuntimeError):
            run(inner)
        return "outer done"

    assert run(main) == "outer done"
    assert current_kernel() is None
