"""hello: a few coroutines hopping across Main, Default and IO, showing which thread ran each step.

The smallest look at the kernel: tasks are generators, `spawn` starts them on a
dispatcher, `with_context` runs a blocking call on IO and comes back, and the
printout names the OS thread under every step.
"""
import threading
import time
from collections.abc import Callable

from genloop.kernel import Dispatchers, Gen, Instrument, Task, gather, run, sleep, spawn, with_context


class ThreadReport(Instrument):
    """Prints one line per step: which thread ran which task."""

    def __init__(self, echo: Callable[[str], object] = print) -> None:
        self.echo = echo
        self.lock = threading.Lock()
        self.t0 = time.monotonic()

    def before_step(self, task: Task) -> None:
        with self.lock:
            self.echo(f"{time.monotonic() - self.t0:6.3f}s  {threading.current_thread().name:<18} "
                      f"steps task #{task.id} {task.name}")


def blocking_lookup(n: int) -> int:
    """A blocking call (it would freeze Main): runs on an IO thread."""
    time.sleep(0.05)
    return n * n


def worker(label: str, n: int) -> Gen[str]:
    yield from sleep(0.01 * n)
    square = yield from with_context(Dispatchers.IO, blocking_lookup, n)
    yield
    return f"{label}: {n}² = {square}"


def main(rounds: int = 3) -> Gen[list[str]]:
    tasks = []
    for i, d in enumerate([Dispatchers.Main, Dispatchers.Default, Dispatchers.IO] * rounds):
        tasks.append((yield from spawn(worker, d.name, i, dispatcher=d, name=f"worker-{d.name}-{i}")))
    return (yield from gather(*[t.join() for t in tasks]))


def demo(echo: Callable[[str], object] = print, rounds: int = 3) -> None:
    for line in run(main, rounds, instruments=[ThreadReport(echo)]):
        echo(line)
