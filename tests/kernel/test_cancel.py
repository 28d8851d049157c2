"""Cancellation: delivered at every kind of suspension point, finally blocks run, join reports it."""
import socket
import threading

import pytest

from genloop.kernel import (
    Cancelled,
    Dispatchers,
    Event,
    Future,
    Lock,
    Queue,
    Semaphore,
    checkpoint,
    current_task,
    run,
    sleep,
    spawn,
    wait_readable,
    wait_writable,
    with_context,
)
from tests.kernel.kernel_helpers import DEADLINE, PlainThread, until, when_state

DISPATCHERS = pytest.mark.parametrize(
    "dispatcher", [Dispatchers.Main, Dispatchers.Default], ids=["Main", "Default"])


def cancel_while_parked(wait, *, dispatcher, after=None, parked=lambda t: t.state == "waiting"):
    """Spawn a victim that runs ``wait()``, cancel it once parked, check what it saw.

    ``after()`` (a generator function) runs in main once the victim has ended,
    to check the resource it waited on was left intact.
    """
    log = []

    def victim():
        log.append("start")
        try:
            yield from wait()
            log.append("resumed normally")
        except Cancelled:
            log.append("cancelled")
            raise
        finally:
            log.append("finally")

    def main():
        t = yield from spawn(victim, dispatcher=dispatcher, name="victim")
        yield from until(lambda: parked(t), what="victim parked")
        t.cancel()
        with pytest.raises(Cancelled):
            yield from t.join()
        assert t.done and t.cancelled and isinstance(t.exception, Cancelled)
        if after is not None:
            yield from after()

    run(main)
    assert log == ["start", "cancelled", "finally"]


@DISPATCHERS
def test_cancel_during_sleep(dispatcher):
    cancel_while_parked(lambda: sleep(3600), dispatcher=dispatcher)


@DISPATCHERS
def test_cancel_during_io_wait(dispatcher):
    a, b = socket.socketpair()
    a.setblocking(False)

    def after():
        # the waiter slot was freed: a new wait on the same fd works
        b.send(b"x")
        yield from wait_readable(a)
        assert a.recv(1) == b"x"

    try:
        cancel_while_parked(lambda: wait_readable(a), dispatcher=dispatcher, after=after)
    finally:
        a.close()
        b.close()


@DISPATCHERS
def test_cancel_during_write_wait(dispatcher):
    a, b = socket.socketpair()
    a.setblocking(False)
    try:
        while True:
            a.send(b"x" * 65536)
    except BlockingIOError:
        pass

    def after():
        b.setblocking(False)
        while True:
            try:
                b.recv(1 << 20)
            except BlockingIOError:
                break
        yield from wait_writable(a)

    try:
        cancel_while_parked(lambda: wait_writable(a), dispatcher=dispatcher, after=after)
    finally:
        a.close()
        b.close()


@DISPATCHERS
def test_cancel_during_join(dispatcher):
    ev = Event()
    target = {}

    def long_child():
        yield from ev.wait()
        return "child finished"

    def wait():
        target["t"] = yield from spawn(long_child)
        yield from target["t"].join()

    def after():
        # cancelling a joiner does not cancel what it was joining
        assert not target["t"].done
        ev.set()
        assert (yield from target["t"].join()) == "child finished"

    cancel_while_parked(wait, dispatcher=dispatcher, after=after)


@DISPATCHERS
def test_cancel_during_queue_get(dispatcher):
    q = Queue()

    def after():
        q.put_nowait("item")
        assert q.get_nowait() == "item"    # not swallowed by the cancelled getter
        yield from checkpoint()

    cancel_while_parked(q.get, dispatcher=dispatcher, after=after)


@DISPATCHERS
def test_cancel_during_queue_put_on_a_full_queue(dispatcher):
    q = Queue(1)
    q.put_nowait("first")

    def after():
        assert q.get_nowait() == "first"
        assert q.qsize() == 0              # the cancelled put did not deposit its item
        yield from q.put("third")
        assert q.get_nowait() == "third"

    cancel_while_parked(lambda: q.put("second"), dispatcher=dispatcher, after=after)


@DISPATCHERS
def test_cancel_during_lock_acquire(dispatcher):
    lock = Lock()

    def wait():
        yield from lock.acquire()

    def main_holds_then_checks():
        lock.release()
        assert not lock.locked()           # not handed to the cancelled waiter
        yield from lock.acquire()
        lock.release()

    def holder():
        yield from lock.acquire()

    run(holder)                             # take the lock (Lock is not tied to a kernel)
    assert lock.locked()
    cancel_while_parked(wait, dispatcher=dispatcher, after=main_holds_then_checks)


@DISPATCHERS
def test_cancel_during_semaphore_acquire(dispatcher):
    sem = Semaphore(0)

    def after():
        sem.release()
        assert sem.value == 1              # the permit was not given to the cancelled waiter
        yield from sem.acquire()
        assert sem.value == 0

    cancel_while_parked(sem.acquire, dispatcher=dispatcher, after=after)


@DISPATCHERS
def test_cancel_during_event_wait(dispatcher):
    ev = Event()

    def after():
        ev.set()
        yield from ev.wait()

    cancel_while_parked(ev.wait, dispatcher=dispatcher, after=after)


@DISPATCHERS
def test_cancel_during_future_wait(dispatcher):
    fut = Future()

    def after():
        fut.set_result("late")
        assert (yield from fut.wait()) == "late"

    cancel_while_parked(fut.wait, dispatcher=dispatcher, after=after)


@DISPATCHERS
def test_cancel_at_a_bare_yield(dispatcher):
    spins = []

    def spin():
        while True:
            spins.append(1)
            yield

    cancel_while_parked(spin, dispatcher=dispatcher, parked=lambda t: len(spins) > 3)


@DISPATCHERS
def test_cancel_at_checkpoint(dispatcher):
    spins = []

    def spin():
        while True:
            spins.append(1)
            yield from checkpoint()

    cancel_while_parked(spin, dispatcher=dispatcher, parked=lambda t: len(spins) > 3)


# -- with_context ----------------------------------------------------------------------------

@pytest.mark.concurrency
def test_cancel_during_with_context_plain_call_waits_for_the_call_then_cancels():
    started = threading.Event()
    release = threading.Event()
    log = []

    def blocking():
        started.set()
        release.wait(DEADLINE)
        log.append("call finished")
        return "value"

    def caller():
        try:
            yield from with_context(Dispatchers.IO, blocking)
            log.append("caller resumed normally")
        except Cancelled:
            log.append("caller cancelled")
            raise

    def main():
        t = yield from spawn(caller)
        assert (yield from with_context(Dispatchers.IO, started.wait, DEADLINE))
        t.cancel()
        # the call cannot be interrupted: the caller stays parked until it ends
        for _ in range(20):
            yield from checkpoint()
        assert not t.done
        assert log == []
        release.set()
        with pytest.raises(Cancelled):
            yield from t.join()

    run(main)
    assert log == ["call finished", "caller cancelled"]


@pytest.mark.concurrency
def test_cancel_during_with_context_generator_cancels_the_child_first():
    log = []
    child_task = {}

    def child():
        child_task["t"] = yield from current_task()
        log.append(("child on", threading.current_thread().name.startswith("genloop-Default-")))
        try:
            yield from sleep(3600)
        finally:
            log.append("child finally")

    def caller():
        try:
            yield from with_context(Dispatchers.Default, child)
        except Cancelled:
            log.append("caller cancelled")
            raise

    def main():
        t = yield from spawn(caller)
        yield from until(lambda: "t" in child_task and child_task["t"].state == "waiting",
                         what="child asleep")
        t.cancel()
        with pytest.raises(Cancelled):
            yield from t.join()
        assert child_task["t"].cancelled

    run(main)
    assert log == [("child on", True), "child finally", "caller cancelled"]


# -- the rules around cancellation ----------------------------------------------------------

def test_task_cancelled_before_its_first_step_never_runs_its_body():
    ran = []

    def child():
        ran.append("body")
        yield
        ran.append("after first yield")

    def main():
        t = yield from spawn(child)
        t.cancel()
        with pytest.raises(Cancelled):
            yield from t.join()

    run(main)
    assert ran == []


@pytest.mark.concurrency
def test_plain_call_cancelled_before_it_starts_never_runs():
    gate = threading.Event()
    ran = []

    def occupy():
        gate.wait(DEADLINE)

    def must_not_run():
        ran.append("ran")

    one = Dispatchers.Default.limited(1)

    def caller():
        yield from with_context(one, must_not_run)

    def main():
        blocker = yield from spawn(with_context, one, occupy)
        yield from until(lambda: blocker.state == "waiting", what="blocker parked")
        t = yield from spawn(caller)
        yield from until(lambda: t.state == "waiting", what="caller parked")
        t.cancel()                         # the call is still queued behind `occupy`
        gate.set()
        with pytest.raises(Cancelled):
            yield from t.join()
        yield from blocker.join()

    run(main)
    assert ran == []


def test_task_that_catches_cancelled_and_returns_still_reports_cancelled():
    def stubborn():
        try:
            yield from sleep(3600)
        except Cancelled:
            pass
        return "I refuse"

    def main():
        t = yield from spawn(stubborn)
        yield from until(lambda: t.state == "waiting", what="stubborn asleep")
        t.cancel()
        with pytest.raises(Cancelled):
            yield from t.join()
        return t

    t = run(main)
    assert t.cancelled


def test_finally_can_still_wait_after_cancellation():
    log = []

    def cleaner():
        try:
            yield from sleep(3600)
        finally:
            yield from sleep(0.001)         # cleanup that itself suspends
            log.append("cleaned up")

    def main():
        t = yield from spawn(cleaner)
        yield from until(lambda: t.state == "waiting", what="cleaner asleep")
        t.cancel()
        with pytest.raises(Cancelled):
            yield from t.join()

    run(main)
    assert log == ["cleaned up"]


def test_cancel_is_idempotent():
    count = []

    def child():
        try:
            yield from sleep(3600)
        except Cancelled:
            count.append(1)
            raise

    def main():
        t = yield from spawn(child)
        yield from until(lambda: t.state == "waiting", what="child asleep")
        for _ in range(5):
            t.cancel()
        with pytest.raises(Cancelled):
            yield from t.join()
        t.cancel()                          # after the end: a no-op
        assert t.cancelled

    run(main)
    assert count == [1]


def test_cancel_of_a_finished_task_changes_nothing():
    def child():
        yield
        return "done"

    def main():
        t = yield from spawn(child)
        assert (yield from t.join()) == "done"
        t.cancel()
        assert t.result == "done" and t.exception is None and not t.cancelled
        assert (yield from t.join()) == "done"

    run(main)


def test_task_can_cancel_itself():
    def child():
        me = yield from current_task()
        me.cancel()
        yield                                # delivered at the next suspension point
        return "not reached"

    def main():
        t = yield from spawn(child)
        with pytest.raises(Cancelled):
            yield from t.join()

    run(main)


def test_cancelled_is_a_base_exception():
    assert issubclass(Cancelled, BaseException)
    assert not issubclass(Cancelled, Exception)


@pytest.mark.concurrency
def test_cancel_from_a_plain_thread():
    log = []

    def child():
        try:
            yield from sleep(3600)
        finally:
            log.append("finally")

    def main():
        t = yield from spawn(child)
        th = when_state(t, "waiting", t.cancel)
        with pytest.raises(Cancelled):
            yield from t.join()
        th.join()

    run(main)
    assert log == ["finally"]


@pytest.mark.concurrency
@DISPATCHERS
def test_cancel_is_thread_safe(dispatcher):
    """Many plain threads cancel at once: Cancelled is delivered exactly once."""
    caught = []
    n_threads = 8

    def child():
        ev = Event()
        try:
            yield from ev.wait()
        except Cancelled:
            caught.append(1)
            raise

    def main():
        for _ in range(20):
            t = yield from spawn(child, dispatcher=dispatcher)
            barrier = threading.Barrier(n_threads, timeout=DEADLINE)

            def go():
                barrier.wait()
                t.cancel()

            yield from until(lambda: t.state == "waiting", what="child waiting")
            threads = [PlainThread(go) for _ in range(n_threads)]
            with pytest.raises(Cancelled):
                yield from t.join()
            for th in threads:
                th.join()

    run(main)
    assert caught == [1] * 20


@pytest.mark.concurrency
def test_cancel_racing_a_wake_up_is_never_lost_or_doubled():
    """Event.set and cancel() from two plain threads at once, 50 times.

    Either the wake-up wins (the task then meets Cancelled at its next
    checkpoint) or the cancel does; the task never hangs and is never resumed twice.
    """
    outcomes = []

    def child(ev):
        yield from ev.wait()
        yield from checkpoint()
        return "finished"

    def main():
        for _ in range(50):
            ev = Event()
            t = yield from spawn(child, ev, dispatcher=Dispatchers.Default)
            yield from until(lambda: t.state == "waiting", what="child waiting")
            barrier = threading.Barrier(2, timeout=DEADLINE)
            a = PlainThread(lambda: (barrier.wait(), ev.set()))
            b = PlainThread(lambda: (barrier.wait(), t.cancel()))
            try:
                outcomes.append((yield from t.join()))
            except Cancelled:
                outcomes.append("cancelled")
            a.join()
            b.join()

    run(main)
    assert len(outcomes) == 50
    assert set(outcomes) <= {"finished", "cancelled"}


@pytest.mark.concurrency
def test_cancel_racing_a_lock_release_never_loses_the_lock():
    """release() and cancel() of the waiter from two plain threads at once, 50 times:
    whoever wins, the lock ends up free."""
    lock = Lock()
    outcomes = []

    def waiter():
        yield from lock.acquire()
        try:
            yield from checkpoint()          # a pending cancel lands here, lock held
            return "got it"
        finally:
            lock.release()

    def main():
        for _ in range(50):
            yield from lock.acquire()
            t = yield from spawn(waiter, dispatcher=Dispatchers.Default)
            yield from until(lambda: t.state == "waiting", what="waiter parked")
            barrier = threading.Barrier(2, timeout=DEADLINE)
            a = PlainThread(lambda: (barrier.wait(), lock.release()))
            b = PlainThread(lambda: (barrier.wait(), t.cancel()))
            try:
                outcomes.append((yield from t.join()))
            except Cancelled:
                outcomes.append("cancelled")
            a.join()
            b.join()
            assert not lock.locked(), "the lock was lost to a cancelled waiter"

    run(main)
    assert len(outcomes) == 50
    assert set(outcomes) <= {"got it", "cancelled"}


@pytest.mark.concurrency
def test_cancel_racing_a_put_never_loses_the_item():
    """put_nowait() and cancel() of the getter at once, 50 times: the item is either
    returned by the getter or still in the queue."""
    def getter(q):
        return (yield from q.get())

    def main():
        for i in range(50):
            q = Queue()
            t = yield from spawn(getter, q, dispatcher=Dispatchers.Default)
            yield from until(lambda: t.state == "waiting", what="getter parked")
            barrier = threading.Barrier(2, timeout=DEADLINE)
            a = PlainThread(lambda: (barrier.wait(), q.put_nowait(i)))
            b = PlainThread(lambda: (barrier.wait(), t.cancel()))
            try:
                got = [(yield from t.join())]
            except Cancelled:
                got = []
            a.join()
            b.join()
            while q.qsize():
                got.append(q.get_nowait())
            assert got == [i]

    run(main)
