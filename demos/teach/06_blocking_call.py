"""06 · a blocking call freezes the loop; `with_context(IO)` does not.

    genloop trace 06 --out trace.json --html trace.html   (or: python demos/teach/06_blocking_call.py)

What to watch:
- A `ticker` task on Main ticks every 50 ms. Then `main` calls `time.sleep`
  right on Main: for 0.2 s no other task on Main can run, so the ticker
  misses its ticks, and the kernel logs a "slow step on Main" report naming
  the line. The same call through `with_context(Dispatchers.IO, ...)` runs
  on an IO thread, and the ticker keeps its pace.
- The returned numbers: the longest gap between ticks during each call.
- In a trace, the frozen call is one long slice on the Main lane; the other
  is a long slice on an IO lane, with Main's short ticks going on beside it.
- Under `genloop step` every worker is simulated on one thread, and a
  `time.sleep` in a step is simulated too: it keeps only its own worker busy
  for 0.2 s of virtual time ("blocks this worker 0.2 s"). On Main the ticker
  waits for it; on IO-1 it goes on ticking, and the figures come out as
  under `run` (0.25 and 0.05).
"""
import time

from genloop.kernel import Dispatchers, run, sleep, spawn, with_context

BLOCK = 0.2
TICK = 0.05


def ticker(ticks):
    while True:
        ticks.append(time.monotonic())
        yield from sleep(TICK)


def longest_gap(ticks, start, end):
    """The longest pause between two ticks that overlaps [start, end]."""
    return max((b - a for a, b in zip(ticks, ticks[1:]) if b > start and a < end), default=0.0)


def main():
    ticks = []
    tick_task = yield from spawn(ticker, ticks, name="ticker")
    yield from sleep(2 * TICK)

    start = time.monotonic()
    time.sleep(BLOCK)                                        # blocks Main: the ticker stops too
    frozen = (start, time.monotonic())
    yield from sleep(2 * TICK)

    start = time.monotonic()
    yield from with_context(Dispatchers.IO, time.sleep, BLOCK)   # blocks an IO thread only
    offloaded = (start, time.monotonic())
    yield from sleep(TICK)

    tick_task.cancel()
    return {"longest gap, time.sleep on Main": round(longest_gap(ticks, *frozen), 3),
            "longest gap, with_context(IO)": round(longest_gap(ticks, *offloaded), 3)}


if __name__ == "__main__":
    print(run(main))
