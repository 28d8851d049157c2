"""Many tasks, many threads: nothing lost, nothing duplicated, no wake-up missed."""
import collections
import socket
import threading

import pytest

from genloop.kernel import Cancelled, Dispatchers, Event, Future, Queue, QueueClosed, run, sleep, spawn, wait_readable
from tests.kernel.kernel_helpers import PlainThread, wait_until

pytestmark = pytest.mark.concurrency


def test_ten_thousand_messages_through_queues_on_default_threads():
    n_producers, n_consumers, per_producer = 4, 4, 2500
    q = Queue(maxsize=16)
    threads = collections.Counter()
    guard = threading.Lock()

    def producer(p):
        for i in range(per_producer):
            yield from q.put((p, i))

    def consumer():
        got = []
        while True:
            try:
                item = yield from q.get()
            except QueueClosed:
                return got
            got.append(item)
            if len(got) % 100 == 0:
                with guard:
                    threads[threading.current_thread().name] += 1

    def main():
        producers, consumers = [], []
        for c in range(n_consumers):
            consumers.append((yield from spawn(consumer, dispatcher=Dispatchers.Default)))
        for p in range(n_producers):
            producers.append((yield from spawn(producer, p, dispatcher=Dispatchers.Default)))
        for t in producers:
            yield from t.join()
        q.close()
        received = []
        for t in consumers:
            received.extend((yield from t.join()))
        return received

    received = run(main, default_threads=4)
    expected = [(p, i) for p in range(n_producers) for i in range(per_producer)]
    assert len(received) == len(expected) == 10_000
    assert collections.Counter(received) == collections.Counter(expected)   # none lost or doubled
    assert all(name.startswith("genloop-Default-") for name in threads)


def test_per_producer_order_is_kept_through_one_queue():
    q = Queue(maxsize=4)

    def producer(p):
        for i in range(500):
            yield from q.put((p, i))

    def main():
        ps = []
        for p in range(3):
            ps.append((yield from spawn(producer, p, dispatcher=Dispatchers.Default)))
        got = []
        for _ in range(1500):
            got.append((yield from q.get()))
        for t in ps:
            yield from t.join()
        return got

    got = run(main, default_threads=3)
    for p in range(3):
        assert [i for q_, i in got if q_ == p] == list(range(500))


def test_queue_fed_by_plain_threads():
    q = Queue()
    n_threads, per_thread = 4, 500

    def feeder(k):
        for i in range(per_thread):
            q.put_nowait((k, i))

    def consumer(n):
        got = []
        for _ in range(n):
            got.append((yield from q.get()))
        return got

    def main():
        c1 = yield from spawn(consumer, 1000, dispatcher=Dispatchers.Default)
        c2 = yield from spawn(consumer, 1000)
        feeders = [PlainThread(feeder, k) for k in range(n_threads)]
        got = (yield from c1.join()) + (yield from c2.join())
        for f in feeders:
            f.join()
        return got

    got = run(main)
    assert sorted(got) == [(k, i) for k in range(n_threads) for i in range(per_thread)]


def test_many_wake_ups_from_plain_threads():
    """Event.set, Future.set_result, Queue.put_nowait and Task.cancel from threading.Threads,
    100 rounds, tasks on Main and Default; every one reaches its task."""
    rounds = 100

    def on_event(ev):
        yield from ev.wait()
        return "event"

    def on_future(fut):
        return (yield from fut.wait())

    def on_queue(q):
        return (yield from q.get())

    def on_cancel():
        try:
            yield from sleep(3600)
        except Cancelled:
            return "cancelled"

    def main():
        outcomes = collections.Counter()
        for r in range(rounds):
            d = Dispatchers.Default if r % 2 else Dispatchers.Main
            ev, fut, q = Event(), Future(), Queue()
            ts = [
                (yield from spawn(on_event, ev, dispatcher=d)),
                (yield from spawn(on_future, fut, dispatcher=d)),
                (yield from spawn(on_queue, q, dispatcher=d)),
                (yield from spawn(on_cancel, dispatcher=d)),
            ]
            actions = [ev.set, lambda: fut.set_result("future"), lambda: q.put_nowait("queue"),
                       ts[3].cancel]

            def wake_all(ts=ts, actions=actions):
                assert wait_until(lambda: all(t.state == "waiting" for t in ts))
                for act in actions:
                    act()

            th = PlainThread(wake_all)
            for t in ts[:3]:
                outcomes[(yield from t.join())] += 1
            with pytest.raises(Cancelled):
                yield from ts[3].join()
            outcomes["cancelled"] += 1
            th.join()
        return outcomes

    outcomes = run(main)
    assert outcomes == {"event": rounds, "future": rounds, "queue": rounds, "cancelled": rounds}


def test_many_tasks_spawned_and_joined_across_dispatchers():
    def leaf(i):
        if i % 3 == 0:
            yield from sleep(0)
        else:
            yield
        return i

    def main():
        ts = []
        for i in range(600):
            d = (Dispatchers.Main, Dispatchers.Default, Dispatchers.IO)[i % 3]
            ts.append((yield from spawn(leaf, i, dispatcher=d)))
        total = 0
        for t in ts:
            total += yield from t.join()
        return total

    assert run(main, io_threads=4) == sum(range(600))


def test_io_wake_ups_for_workers_under_load():
    pairs = [socket.socketpair() for _ in range(16)]
    for a, b in pairs:
        a.setblocking(False)
        b.setblocking(False)

    def echo_rounds(a, rounds):
        for i in range(rounds):
            while True:
                try:
                    data = a.recv(16)
                    break
                except BlockingIOError:
                    yield from wait_readable(a)
            assert data == str(i).encode()
            a.send(b"k")

    def driver(b, rounds):
        for i in range(rounds):
            b.send(str(i).encode())
            while True:
                try:
                    assert b.recv(16) == b"k"
                    break
                except BlockingIOError:
                    yield from wait_readable(b)

    def main():
        ts = []
        for k, (a, b) in enumerate(pairs):
            d = Dispatchers.Default if k % 2 else Dispatchers.Main
            ts.append((yield from spawn(echo_rounds, a, 50, dispatcher=d)))
            ts.append((yield from spawn(driver, b, 50, dispatcher=Dispatchers.Default)))
        for t in ts:
            yield from t.join()
        return "ok"

    try:
        assert run(main) == "ok"
    finally:
        for a, b in pairs:
            a.close()
            b.close()
