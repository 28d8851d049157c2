"""Helpers for the demo tests: start a demo, and check it left nothing behind when it stopped."""
import contextlib
import os
import threading
import time

from demos.serving import Serving

#: Every wait is bounded by this; none sleeps "long enough".
DEADLINE = 5.0


def wait_until(condition, deadline: float = DEADLINE) -> bool:
    """Poll ``condition`` until it holds or ``deadline`` seconds pass."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def children() -> list[str]:
    pids = []
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(FileNotFoundError), open(f"/proc/self/task/{tid}/children") as f:
            pids += f.read().split()
    return pids


@contextlib.contextmanager
def serving(serve, **options):
    """Run a demo's ``serve`` on a thread; yield the ``Serving``; on exit stop it and check for leaks."""
    threads, fds, kids = set(threading.enumerate()), open_fds(), set(children())
    with Serving(serve, "127.0.0.1", 0, **options) as server:
        yield server
    assert not server.thread.is_alive()
    assert wait_until(lambda: set(threading.enumerate()) <= threads), \
        f"threads left behind: {set(threading.enumerate()) - threads}"
    assert wait_until(lambda: set(children()) <= kids), "child processes left behind"
    assert wait_until(lambda: open_fds() <= fds), "file descriptors left behind"


#: The search data the tests use: generated in a fraction of a second.
SMALL_USERS, SMALL_PRODUCTS = 200, 2_000
