"""08 · Unconfined: a task with no thread of its own runs wherever it was woken.

    genloop step 08            (or: python demos/teach/08_unconfined.py)

What to watch:
- `main` on Main starts `work` on Default; `work` spawns `drifter` with
  `Dispatchers.Unconfined` and waits for it. Having no queue of its own,
  `drifter` takes its first step on Default, where it was spawned.
- `drifter` sleeps. The timer fires on Main (the poller's thread, where the
  kernel keeps its timers), and an Unconfined task resumes on the thread that
  woke it: its next step is on the Main lane, as under `run`.
- The trail `drifter` returns names the threads, the same under both drivers:
  Unconfined is cheap (no hop to a queue) but you do not choose the thread.
"""
import threading

from genloop.kernel import Dispatchers, run, sleep, spawn, with_context


def thread():
    return threading.current_thread().name


def drifter():
    trail = [f"drifter starts on {thread()}"]
    yield from sleep(0.1)                       # woken by a timer, on Main
    trail.append(f"after sleep on {thread()}")
    return trail


def work():
    task = yield from spawn(drifter, dispatcher=Dispatchers.Unconfined, name="drifter")
    return (yield from task.join())             # work waits on Default; drifter ends on Main


def main():
    return (yield from with_context(Dispatchers.Default, work))


if __name__ == "__main__":
    print("\n".join(run(main)))
