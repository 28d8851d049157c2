"""Helpers for the demo tests: start a demo, and check it left nothing behind when it stopped."""
import contextlib
import gc
import os
import threading
import time

from genloop.demos.serving import Serving

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


def fds_released(fds) -> bool:
    """No fd beyond ``fds`` is open, once the collector has run: an object in
    a reference cycle that closes its fd when collected is not a leak."""
    gc.collect()
    return open_fds() <= fds


def describe_fd(fd: str) -> str:
    with contextlib.suppress(OSError):
        return f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}"
    return fd


def children() -> list[str]:
    pids = []
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(FileNotFoundError), open(f"/proc/self/task/{tid}/children") as f:
            pids += f.read().split()
    return pids


@contextlib.contextmanager
def reaped(process):
    """``process`` for the block; after it, killed if it still runs, and its pipes closed."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


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
    assert wait_until(lambda: fds_released(fds)), \
        f"file descriptors left behind: {sorted(describe_fd(f) for f in open_fds() - fds)}"


#: The search data the tests use: generated in a fraction of a second.
SMALL_USERS, SMALL_PRODUCTS = 200, 2_000
