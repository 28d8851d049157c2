"""09 · `limited(n)`: at most n tasks of a view at once, on the parent's threads.

    genloop step 09            (or: python demos/teach/09_limited.py)

What to watch:
- Five `caller` tasks on Main each hand a blocking `fetch` to
  `Dispatchers.IO.limited(2)`. Two calls enter the IO run queue; the other
  three sit in the `IO.limited(2) waiting` queue, although IO has threads to
  spare: the view caps them, not the pool.
- Each call that ends passes its slot on: the waiting queue drains one by one,
  and the callers resume on Main as their calls return.
- `main` returns whether more than two fetches ever ran at once: never. Under
  `run` the five 50 ms fetches take about 150 ms (three rounds of two).
"""
import threading
import time

from genloop.kernel import Dispatchers, run, spawn, with_context

FETCHES = 5
LIMIT = 2
FETCH_TIME = 0.05


def fetch(i, running, peak, lock):
    """A blocking call (a slow backend): fine on an IO thread."""
    with lock:
        running.add(i)
        peak.append(len(running))
    time.sleep(FETCH_TIME)
    with lock:
        running.discard(i)
    return i


def caller(view, i, running, peak, lock):
    return (yield from with_context(view, fetch, i, running, peak, lock))


def main():
    running, peak, lock = set(), [], threading.Lock()
    view = Dispatchers.IO.limited(LIMIT)
    tasks = []
    for i in range(FETCHES):
        tasks.append((yield from spawn(caller, view, i, running, peak, lock, name=f"caller-{i}")))
    for task in tasks:
        yield from task.join()
    return f"at most {LIMIT} at once: {max(peak) <= LIMIT}"


if __name__ == "__main__":
    print(run(main))
