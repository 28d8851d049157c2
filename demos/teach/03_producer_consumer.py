"""03 · producer/consumer on a bounded queue: back-pressure without threads blocking.

    genloop step 03            (or: python demos/teach/03_producer_consumer.py)

What to watch:
- The producer (Main) is faster: after two items it "waits to put into a full
  Queue". The queue's bound is what slows it down to the consumer's pace.
- The consumer runs on a Default lane, another (simulated) thread: a `get`
  on Default wakes the producer on Main, and a `put` on Main wakes the consumer.
- While the consumer "works" (sleeps 0.1 s), the Timers column holds it and
  the producer stays parked; time jumps from timer to timer.
- `close()` ends the stream: the consumer's next `get` raises `QueueClosed`.
"""
from genloop.kernel import Dispatchers, Queue, QueueClosed, run, sleep, spawn

ITEMS = 5


def producer(q):
    for i in range(ITEMS):
        yield from q.put(i)             # parks while the queue is full
    q.close()


def consumer(q):
    done = []
    try:
        while True:
            item = yield from q.get()   # parks while the queue is empty
            yield from sleep(0.1)       # the work
            done.append(item)
    except QueueClosed:
        return done


def main():
    q = Queue(maxsize=2)
    c = yield from spawn(consumer, q, dispatcher=Dispatchers.Default, name="consumer")
    yield from producer(q)
    return (yield from c.join())


if __name__ == "__main__":
    print(run(main))
