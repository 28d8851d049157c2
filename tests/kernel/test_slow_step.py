"""The slow-step watchdog: a step on Main that blocks is reported, with where and what to do."""
import inspect
import logging
import threading
import time

from genloop.kernel import Dispatchers, Instrument, run, sleep, spawn
from tests.kernel.kernel_helpers import DEADLINE, thread_names


class SlowSteps(Instrument):
    def __init__(self):
        self.reports = []
        self.reported = threading.Event()

    def slow_step(self, task, seconds, stack):
        self.reports.append((task, seconds, stack, time.monotonic()))
        self.reported.set()


def blocking_program(block):
    """main spawns "sleepy", a task on Main whose one step calls ``block()``."""

    def sleepy():
        yield
        block()                                   # the blocking call under test
        yield from sleep(0)

    def main():
        t = yield from spawn(sleepy, name="sleepy")
        yield from t.join()

    return main


def test_blocking_step_on_main_is_reported_with_task_and_line(caplog):
    ins = SlowSteps()
    where = {}

    def sleepy():
        yield
        where["line"] = inspect.currentframe().f_lineno + 1
        time.sleep(0.3)                           # the blocking call under test
        yield from sleep(0)

    def main():
        t = yield from spawn(sleepy, name="sleepy")
        yield from t.join()

    with caplog.at_level(logging.WARNING, logger="genloop"):
        run(main, instruments=[ins])

    assert len(ins.reports) == 1
    task, seconds, stack, _ = ins.reports[0]
    assert task.name == "sleepy"
    assert seconds >= 0.1                         # the default threshold
    assert stack[-1].filename == __file__
    assert stack[-1].lineno == where["line"]

    warnings = [r for r in caplog.records if r.name == "genloop" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "sleepy" in message
    assert f"{__file__}:{where['line']}" in message
    assert "with_context" in message
    assert "Dispatchers.IO" in message


def test_slow_step_is_reported_while_the_step_is_still_running():
    ins = SlowSteps()
    # the blocking call ends only once the watchdog has reported it (bounded)
    main = blocking_program(lambda: ins.reported.wait(DEADLINE))
    start = time.monotonic()
    run(main, instruments=[ins])
    assert ins.reported.is_set()
    assert time.monotonic() - start < DEADLINE


def test_slow_step_threshold_is_honoured_low():
    ins = SlowSteps()
    holder = {}

    def block():
        holder["start"] = time.monotonic()
        ins.reported.wait(DEADLINE)

    main = blocking_program(block)
    run(main, instruments=[ins], slow_step=0.05)
    assert len(ins.reports) == 1
    _, seconds, _, at = ins.reports[0]
    assert 0.05 <= seconds < 0.1                  # well before the default 0.1 s would fire
    assert at - holder["start"] < 0.1 + 0.05


def test_slow_step_threshold_is_honoured_high(caplog):
    ins = SlowSteps()
    main = blocking_program(lambda: time.sleep(0.3))
    with caplog.at_level(logging.WARNING, logger="genloop"):
        run(main, instruments=[ins], slow_step=1.0)
    assert ins.reports == []
    assert not [r for r in caplog.records if r.name == "genloop"]


def test_slow_step_none_disables_the_watchdog(caplog):
    ins = SlowSteps()
    watchdogs = []

    def block():
        watchdogs.extend(thread_names("genloop-watchdog"))
        time.sleep(0.3)

    main = blocking_program(block)
    with caplog.at_level(logging.WARNING, logger="genloop"):
        run(main, instruments=[ins], slow_step=None)
    assert ins.reports == []
    assert watchdogs == []
    assert not [r for r in caplog.records if r.name == "genloop"]


def test_fast_steps_are_not_reported(caplog):
    ins = SlowSteps()

    def main():
        for _ in range(50):
            yield from sleep(0.001)

    with caplog.at_level(logging.WARNING, logger="genloop"):
        run(main, instruments=[ins], slow_step=0.05)
    assert ins.reports == []
    assert not [r for r in caplog.records if r.name == "genloop"]


def test_blocking_on_a_worker_is_not_a_slow_step_on_main():
    ins = SlowSteps()

    def worker():
        time.sleep(0.3)                           # fine here: Default is for this
        yield

    def main():
        t = yield from spawn(worker, dispatcher=Dispatchers.Default)
        yield from t.join()

    run(main, instruments=[ins], slow_step=0.05)
    assert ins.reports == []


def test_the_watchdog_samples_without_reading_every_thread_stack(monkeypatch):
    """Sampling reads Main's loop frame, never ``sys._current_frames()``.

    On CPython 3.11 that call can hang the whole process when a collection
    starts inside it (gh-106883): calling it every few milliseconds did, in
    the concurrency suite. Only a report may call it.
    """
    import sys

    calls = []
    real = sys._current_frames
    monkeypatch.setattr(sys, "_current_frames", lambda: calls.append(1) or real())
    ins = SlowSteps()
    threshold = 0.02
    sampled = threading.Event()

    def main():
        started = time.monotonic()
        # Short steps over forty sampling periods (threshold / 4 each).
        while time.monotonic() - started < 10 * threshold:
            yield
        sampled.set()

    run(main, instruments=[ins], slow_step=threshold)
    assert sampled.is_set()
    assert calls == [] and ins.reports == []


def test_a_report_names_the_innermost_frame_that_has_a_line(caplog, monkeypatch):
    """A frame on an instruction of no line (``lineno`` None) is passed over, not shown as ``:None``."""
    import traceback
    import types

    from genloop.kernel.watchdog import Watchdog

    kernel = types.SimpleNamespace(lock=threading.Lock(), stats={"slow_steps": 0}, instruments=())
    dog = Watchdog.__new__(Watchdog)      # no thread: only the report is under test
    dog.kernel = kernel
    stack = [traceback.FrameSummary("app.py", 10, "handler", line="compute()"),
             traceback.FrameSummary("app.py", None, "compute", line=None)]
    monkeypatch.setattr(dog, "_stack", lambda task: stack)
    task = types.SimpleNamespace(id=7, name="sleepy")
    with caplog.at_level(logging.WARNING, logger="genloop"):
        dog._report(task, 0.2)
    assert "at app.py:10 (compute())" in caplog.text and ":None" not in caplog.text
