"""Ctrl-C (KeyboardInterrupt) stops the whole kernel, not just the task it lands in."""
import signal
import threading

import pytest

from genloop.kernel import Dispatchers, run, sleep, spawn


def test_ctrl_c_in_a_task_reaches_the_caller_and_leaves_nothing_running():
    cleaned = []

    def sleeper():
        try:
            yield from sleep(3600)
        finally:
            cleaned.append("sleeper")

    def interrupted():
        yield
        signal.raise_signal(signal.SIGINT)    # the handler raises KeyboardInterrupt here
        yield

    def main():
        s = yield from spawn(sleeper, dispatcher=Dispatchers.Default)
        while s.state != "waiting":                # let it reach its sleep (and its try)
            yield
        t = yield from spawn(interrupted)
        yield from t.join()
        return "went on"

    with pytest.raises(KeyboardInterrupt):
        run(main)
    assert cleaned == ["sleeper"]                 # the rest was cancelled and reaped
    assert not [t for t in threading.enumerate() if t.name.startswith("genloop-")]
