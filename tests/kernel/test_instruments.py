"""Instrument hooks: every one of them fires, with the right arguments, in a sensible order."""
import socket
import threading

from genloop.kernel import Dispatchers, Event, Instrument, run, sleep, spawn, wait_readable


class Recorder(Instrument):
    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def _add(self, *event):
        with self.lock:
            self.events.append(event)

    def task_spawned(self, task):
        self._add("spawned", task.name, task.done)

    def before_step(self, task):
        self._add("before", task.name, threading.current_thread().name)

    def after_step(self, task, trap):
        self._add("after", task.name, trap)

    def task_exited(self, task):
        self._add("exited", task.name, task.done, task.result)

    def before_poll(self, timeout):
        self._add("before_poll", timeout)

    def after_poll(self, woken):
        self._add("after_poll", woken)

    def of(self, kind, name=None):
        return [e for e in self.events if e[0] == kind and (name is None or e[1] == name)]


def test_every_hook_fires():
    rec = Recorder()

    def child():
        yield from sleep(0.01)                   # a real timer: Main polls meanwhile
        return "child result"

    def main():
        t = yield from spawn(child, name="child")
        return (yield from t.join())

    assert run(main, instruments=[rec]) == "child result"

    assert rec.of("spawned", "child") == [("spawned", "child", False)]
    assert len(rec.of("spawned")) == 2           # main and child

    befores = rec.of("before", "child")
    afters = rec.of("after", "child")
    assert len(befores) == len(afters) == 2      # up to the sleep, then to the end
    assert all(thread == "MainThread" for _, _, thread in befores)
    assert afters[0][2] is not None              # it stopped at a trap (the sleep)
    assert afters[-1][2] is None                 # it ended

    assert rec.of("exited", "child") == [("exited", "child", True, "child result")]
    assert len(rec.of("exited")) == 2

    polls = rec.of("before_poll")
    assert polls and any(p[1] is not None and 0 < p[1] <= 0.01 for p in polls)
    assert len(rec.of("after_poll")) == len(polls)
    assert all(isinstance(woken, int) for _, woken in rec.of("after_poll"))


def test_hook_order_for_one_task():
    rec = Recorder()

    def child():
        yield
        yield

    def main():
        t = yield from spawn(child, name="child")
        yield from t.join()

    run(main, instruments=[rec])
    mine = [e[0] for e in rec.events if len(e) > 1 and e[1] == "child"]
    assert mine[0] == "spawned"
    assert mine[1] == "before"
    assert "exited" in mine
    # steps come in before/after pairs, and nothing of the task happens after it exited
    steps = [k for k in mine if k in ("before", "after")]
    assert steps == ["before", "after"] * 3
    last_before = len(mine) - 1 - mine[::-1].index("before")
    assert mine.index("exited") > last_before


def test_after_step_reports_the_trap_of_each_kind_of_stop():
    rec = Recorder()
    ev = Event()

    def child():
        yield                                     # checkpoint: None
        yield from ev.wait()                      # a trap
        yield from sleep(0.001)                   # another trap

    def main():
        t = yield from spawn(child, name="child")
        while t.state != "waiting":
            yield
        ev.set()
        yield from t.join()

    run(main, instruments=[rec])
    traps = [e[2] for e in rec.of("after", "child")]
    assert len(traps) == 4
    assert traps[0] is None
    assert traps[1] is not None and traps[2] is not None
    assert traps[1] != traps[2]
    assert traps[3] is None


def test_worker_steps_are_reported_from_worker_threads():
    rec = Recorder()

    def child():
        yield
        return 1

    def main():
        t = yield from spawn(child, name="child", dispatcher=Dispatchers.Default)
        yield from t.join()

    run(main, instruments=[rec])
    threads = {thread for _, _, thread in rec.of("before", "child")}
    assert threads and all(t.startswith("genloop-Default-") for t in threads)


def test_poll_hooks_with_io_wait():
    rec = Recorder()
    a, b = socket.socketpair()
    a.setblocking(False)
    try:
        def reader():
            yield from wait_readable(a)
            return a.recv(10)

        def main():
            t = yield from spawn(reader)
            while t.state != "waiting":
                yield
            b.send(b"x")
            return (yield from t.join())

        assert run(main, instruments=[rec]) == b"x"
    finally:
        a.close()
        b.close()
    assert rec.of("before_poll")
    assert any(woken >= 1 for _, woken in rec.of("after_poll"))


def test_task_woken_names_the_waker():
    woken = []

    class Woken(Instrument):
        def task_woken(self, task, waker):
            woken.append((task.name, None if waker is None else waker.name))

    ev = Event()

    def sleeper():
        yield from sleep(0.001)

    def waiter():
        yield from ev.wait()

    def setter():
        ev.set()
        yield

    def main():
        s = yield from spawn(sleeper, name="sleeper")
        w = yield from spawn(waiter, name="waiter")
        while w.state != "waiting":
            yield
        yield from (yield from spawn(setter, name="setter")).join()
        yield from w.join()
        yield from s.join()

    run(main, instruments=[Woken()])
    assert ("waiter", "setter") in woken           # woken by a task's step
    assert ("sleeper", None) in woken              # woken by a timer
