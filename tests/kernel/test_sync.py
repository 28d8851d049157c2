"""Event, Lock, Semaphore, Queue, Future: semantics, and wake-ups from plain threads."""
import threading

import pytest

from genloop.kernel import (
    Dispatchers,
    Event,
    Future,
    Lock,
    Queue,
    QueueClosed,
    QueueEmpty,
    QueueFull,
    Semaphore,
    checkpoint,
    run,
    sleep,
    spawn,
)
from tests.kernel.kernel_helpers import PlainThread, until, wait_until, when_state


class Boom(Exception):
    pass


# -- Event -------------------------------------------------------------------------------------

def test_event_wakes_every_waiter():
    ev = Event()
    woke = []

    def waiter(i):
        yield from ev.wait()
        woke.append(i)

    def main():
        ts = []
        for i in range(5):
            ts.append((yield from spawn(waiter, i)))
        yield from until(lambda: all(t.state == "waiting" for t in ts), what="waiters parked")
        assert woke == []
        ev.set()
        for t in ts:
            yield from t.join()

    run(main)
    assert sorted(woke) == [0, 1, 2, 3, 4]


def test_event_already_set_does_not_wait_and_clear_resets_it():
    ev = Event()

    def waiter():
        yield from ev.wait()
        return "through"

    def main():
        assert not ev.is_set()
        ev.set()
        ev.set()                             # idempotent
        assert ev.is_set()
        yield from ev.wait()
        ev.clear()
        assert not ev.is_set()
        t = yield from spawn(waiter)
        yield from until(lambda: t.state == "waiting", what="waiter parked")
        ev.set()
        return (yield from t.join())

    assert run(main) == "through"


@pytest.mark.concurrency
@pytest.mark.parametrize("dispatcher", [Dispatchers.Main, Dispatchers.Default],
                         ids=["Main", "Default"])
def test_event_set_from_a_plain_thread(dispatcher):
    ev = Event()

    def waiter():
        yield from ev.wait()
        return threading.current_thread().name

    def main():
        t = yield from spawn(waiter, dispatcher=dispatcher)
        th = when_state(t, "waiting", ev.set)
        name = yield from t.join()       # Main may be asleep in its poller meanwhile
        th.join()
        return name

    name = run(main)
    if dispatcher is Dispatchers.Main:
        assert name == "MainThread"
    else:
        assert name.startswith("genloop-Default-")


# -- Lock and Semaphore ----------------------------------------------------------------------

@pytest.mark.concurrency
def test_lock_gives_mutual_exclusion_across_worker_threads():
    lock = Lock()
    state = {"counter": 0, "inside": 0, "peak": 0}
    n_tasks, rounds = 6, 100

    def worker():
        for _ in range(rounds):
            yield from lock.acquire()
            try:
                state["inside"] += 1
                state["peak"] = max(state["peak"], state["inside"])
                value = state["counter"]
                yield from checkpoint()      # let the others try to get in
                state["counter"] = value + 1
                state["inside"] -= 1
            finally:
                lock.release()

    def main():
        ts = []
        for _ in range(n_tasks):
            ts.append((yield from spawn(worker, dispatcher=Dispatchers.Default)))
        for t in ts:
            yield from t.join()

    run(main, default_threads=4)
    assert state["peak"] == 1
    assert state["counter"] == n_tasks * rounds


def test_lock_locked_and_release_of_an_unheld_lock():
    lock = Lock()

    def main():
        assert not lock.locked()
        yield from lock.acquire()
        assert lock.locked()
        lock.release()
        assert not lock.locked()
        with pytest.raises(RuntimeError):
            lock.release()

    run(main)


def test_lock_waiters_are_served_in_order():
    lock = Lock()
    order = []

    def worker(i):
        yield from lock.acquire()
        order.append(i)
        lock.release()

    def main():
        yield from lock.acquire()
        ts = []
        for i in range(4):
            t = yield from spawn(worker, i)
            yield from until(lambda: t.state == "waiting", what=f"worker {i} parked")
            ts.append(t)
        lock.release()
        for t in ts:
            yield from t.join()

    run(main)
    assert order == [0, 1, 2, 3]


@pytest.mark.concurrency
def test_semaphore_admits_at_most_its_value():
    sem = Semaphore(2)
    state = {"inside": 0, "peak": 0}
    guard = threading.Lock()

    def worker():
        for _ in range(20):
            yield from sem.acquire()
            with guard:
                state["inside"] += 1
                state["peak"] = max(state["peak"], state["inside"])
            yield from checkpoint()
            with guard:
                state["inside"] -= 1
            sem.release()

    def main():
        ts = []
        for _ in range(6):
            ts.append((yield from spawn(worker, dispatcher=Dispatchers.Default)))
        for t in ts:
            yield from t.join()

    run(main, default_threads=4)
    assert state["peak"] == 2
    assert sem.value == 2


def test_semaphore_value_and_release_from_a_plain_thread():
    sem = Semaphore(0)

    def main():
        assert sem.value == 0
        t = yield from spawn(sem.acquire)
        th = when_state(t, "waiting", sem.release)
        yield from t.join()
        th.join()
        assert sem.value == 0

    run(main)
    with pytest.raises(ValueError):
        Semaphore(-1)


# -- Queue -------------------------------------------------------------------------------------

def test_queue_is_fifo():
    q = Queue()

    def main():
        for i in range(5):
            yield from q.put(i)
        assert q.qsize() == len(q) == 5
        out = []
        for _ in range(5):
            out.append((yield from q.get()))
        return out

    assert run(main) == [0, 1, 2, 3, 4]


def test_bounded_queue_put_waits_for_room():
    q = Queue(2)
    put_done = []

    def producer():
        for i in range(5):
            yield from q.put(i)
            put_done.append(i)

    def main():
        p = yield from spawn(producer)
        yield from until(lambda: p.state == "waiting", what="producer blocked on a full queue")
        assert put_done == [0, 1]
        assert q.qsize() == 2
        got = []
        while len(got) < 5:
            got.append((yield from q.get()))
        yield from p.join()
        return got

    assert run(main) == [0, 1, 2, 3, 4]
    assert put_done == [0, 1, 2, 3, 4]


def test_get_waits_for_a_put():
    q = Queue()

    def getter():
        return (yield from q.get())

    def main():
        t = yield from spawn(getter)
        yield from until(lambda: t.state == "waiting", what="getter parked")
        yield from q.put("hello")
        return (yield from t.join())

    assert run(main) == "hello"


def test_queue_nowait_variants():
    q = Queue(1)
    with pytest.raises(QueueEmpty):
        q.get_nowait()
    q.put_nowait("a")
    with pytest.raises(QueueFull):
        q.put_nowait("b")
    assert q.get_nowait() == "a"
    with pytest.raises(QueueEmpty):
        q.get_nowait()


def test_closed_queue_keeps_its_items_then_raises_queue_closed():
    q = Queue()

    def main():
        yield from q.put(1)
        yield from q.put(2)
        q.close()
        q.close()                            # idempotent
        assert q.closed
        with pytest.raises(QueueClosed):
            yield from q.put(3)
        with pytest.raises(QueueClosed):
            q.put_nowait(3)
        assert (yield from q.get()) == 1
        assert q.get_nowait() == 2
        with pytest.raises(QueueClosed):
            yield from q.get()
        with pytest.raises(QueueClosed):
            q.get_nowait()

    run(main)


def test_close_wakes_waiting_getters_and_putters():
    empty = Queue()
    full = Queue(1)
    full.put_nowait("x")

    def get():
        yield from empty.get()

    def put():
        yield from full.put("y")

    def main():
        getters, putters = [], []
        for _ in range(2):
            getters.append((yield from spawn(get)))
            putters.append((yield from spawn(put)))
        yield from until(lambda: all(t.state == "waiting" for t in getters + putters),
                         what="getters and putters parked")
        empty.close()
        full.close()
        for t in getters + putters:
            with pytest.raises(QueueClosed):
                yield from t.join()

    run(main)


@pytest.mark.concurrency
@pytest.mark.parametrize("dispatcher", [Dispatchers.Main, Dispatchers.Default],
                         ids=["Main", "Default"])
def test_put_nowait_from_a_plain_thread_wakes_a_getter(dispatcher):
    q = Queue()

    def getter():
        return (yield from q.get())

    def main():
        t = yield from spawn(getter, dispatcher=dispatcher)
        th = when_state(t, "waiting", lambda: q.put_nowait("from a thread"))
        value = yield from t.join()
        th.join()
        return value

    assert run(main) == "from a thread"


@pytest.mark.concurrency
def test_close_from_a_plain_thread_wakes_a_getter():
    q = Queue()

    def main():
        t = yield from spawn(q.get)
        th = when_state(t, "waiting", q.close)
        with pytest.raises(QueueClosed):
            yield from t.join()
        th.join()

    run(main)


def test_queue_is_not_iterable():
    with pytest.raises(TypeError):
        iter(Queue())


# -- Future ------------------------------------------------------------------------------------

def test_future_result_before_and_after_completion():
    fut = Future()
    assert not fut.done()
    with pytest.raises(RuntimeError):
        fut.result()
    fut.set_result(7)
    assert fut.done() and fut.result() == 7
    with pytest.raises(RuntimeError):
        fut.set_result(8)
    with pytest.raises(RuntimeError):
        fut.set_exception(Boom())

    def main():
        return (yield from fut.wait())       # already done: at once

    assert run(main) == 7


@pytest.mark.concurrency
@pytest.mark.parametrize("dispatcher", [Dispatchers.Main, Dispatchers.Default],
                         ids=["Main", "Default"])
def test_future_set_result_from_a_plain_thread(dispatcher):
    fut = Future()

    def waiter():
        return (yield from fut.wait())

    def main():
        waiters = []
        for _ in range(3):
            waiters.append((yield from spawn(waiter, dispatcher=dispatcher)))

        def complete():
            assert wait_until(lambda: all(t.state == "waiting" for t in waiters))
            fut.set_result("from a thread")

        th = PlainThread(complete)
        results = []
        for t in waiters:
            results.append((yield from t.join()))
        th.join()
        return results

    assert run(main) == ["from a thread"] * 3


@pytest.mark.concurrency
def test_future_set_exception_from_a_plain_thread():
    fut = Future()

    def main():
        t = yield from spawn(fut.wait)
        th = when_state(t, "waiting", lambda: fut.set_exception(Boom("remote")))
        with pytest.raises(Boom, match="remote"):
            yield from t.join()
        th.join()
        with pytest.raises(Boom):
            yield from fut.wait()

    run(main)


# -- primitives shared by tasks on different dispatchers ---------------------------------------

@pytest.mark.concurrency
def test_ping_pong_between_main_and_default_through_queues():
    to_worker, to_main = Queue(), Queue()

    def worker():
        while True:
            try:
                n = yield from to_worker.get()
            except QueueClosed:
                return threading.current_thread().name
            yield from to_main.put(n + 1)

    def main():
        w = yield from spawn(worker, dispatcher=Dispatchers.Default)
        n = 0
        for _ in range(200):
            yield from to_worker.put(n)
            n = yield from to_main.get()
            assert threading.current_thread().name == "MainThread"
        to_worker.close()
        return n, (yield from w.join())

    n, worker_thread = run(main)
    assert n == 200
    assert worker_thread.startswith("genloop-Default-")


def test_sleep_inside_lock_keeps_others_out():
    lock = Lock()
    log = []

    def worker(tag):
        yield from lock.acquire()
        log.append(("in", tag))
        yield from sleep(0.001)
        log.append(("out", tag))
        lock.release()

    def main():
        a = yield from spawn(worker, "a")
        b = yield from spawn(worker, "b")
        yield from a.join()
        yield from b.join()

    run(main)
    assert log == [("in", "a"), ("out", "a"), ("in", "b"), ("out", "b")]

