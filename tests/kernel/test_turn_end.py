"""``Kernel.at_turn_end``: a call made once the thread's current turn of steps has ended."""
import threading

import pytest

from genloop.kernel import Dispatchers, Event, current_kernel, run, spawn
from genloop.kernel.stepper import Stepper


def test_main_runs_the_call_after_every_task_of_the_turn():
    seen = []

    def worker(n):
        seen.append(n)
        yield

    def main():
        kernel = current_kernel()
        assert kernel.at_turn_end(lambda: seen.append("end"))
        yield from spawn(worker, 1)
        yield from spawn(worker, 2)
        yield                   # the two workers run in the turn after this one
        yield
        return seen

    # The call queued in main's first step runs once that turn is over, before the workers.
    assert run(main) == ["end", 1, 2]


@pytest.mark.parametrize("dispatcher", [Dispatchers.Default, Dispatchers.IO])
def test_a_worker_runs_the_call_on_its_own_thread(dispatcher):
    def on_worker():
        done = Event()
        where = []

        def end():
            where.append(threading.current_thread().name)
            done.set()

        registered_on = threading.current_thread().name   # after the wait it may resume on another worker
        assert current_kernel().at_turn_end(end)
        yield from done.wait()
        return where[0], registered_on

    def main():
        t = yield from spawn(on_worker, dispatcher=dispatcher)
        return (yield from t.join())

    ran_on, task_on = run(main)
    assert ran_on == task_on and ran_on.startswith(f"genloop-{dispatcher.name}")


def test_a_failing_call_is_logged_and_the_loop_goes_on(caplog):
    def boom():
        raise RuntimeError("boom")

    def main():
        assert current_kernel().at_turn_end(boom)
        yield
        yield
        return "alive"

    assert run(main) == "alive"
    assert "end-of-turn call" in caplog.text


def test_a_thread_without_turns_is_told_no():
    answers = []

    def main():
        kernel = current_kernel()
        t = threading.Thread(target=lambda: answers.append(kernel.at_turn_end(lambda: None)))
        t.start()
        t.join()
        yield

    run(main)
    assert answers == [False]


def test_the_stepper_has_no_turn_ends():
    def main():
        return current_kernel().at_turn_end(lambda: None)
        yield

    stepper = Stepper(main)
    assert stepper.run() is False
