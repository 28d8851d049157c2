"""05 · hopping Main -> IO -> Main (and Main -> Default -> Main) with `with_context`.

    genloop step 05            (or: python demos/teach/05_with_context.py)

What to watch:
- `with_context(Dispatchers.IO, read_config)` parks `main` ("runs read_config
  on IO and waits") and starts the call as a task on an IO lane.
- When that task returns, it wakes `main`, which resumes on Main: the lanes
  show the hop out and back. The same for the CPU work on Default.
- The returned trail names the threads: MainThread, genloop-IO-1,
  genloop-Default-1. Under `genloop step` every worker is simulated on one
  thread, which wears the simulated worker's name while it runs a step, so
  the trail tells the same story as under plain `run`.
"""
import threading
import time

from genloop.kernel import Dispatchers, run, with_context


def thread():
    return threading.current_thread().name


def read_config():
    """A blocking call: fine on an IO thread, a freeze on Main."""
    time.sleep(0.01)
    return {"rounds": 20_000}, thread()


def crunch(rounds):
    """CPU work: belongs on Default."""
    return sum(i * i for i in range(rounds)), thread()


def main():
    trail = [f"main on {thread()}"]
    config, where = yield from with_context(Dispatchers.IO, read_config)
    trail.append(f"read_config on {where}, back on {thread()}")
    total, where = yield from with_context(Dispatchers.Default, crunch, config["rounds"])
    trail.append(f"crunch on {where}, back on {thread()}")
    return trail


if __name__ == "__main__":
    print("\n".join(run(main)))
