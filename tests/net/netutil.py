"""Shared harness of the net tests: a server on a kernel thread, bounded waits.

Every wait is bounded by ``DEADLINE``: a broken build fails, it never hangs
and never relies on having slept "long enough".
"""
import contextlib
import os
import resource
import socket
import subprocess
import sys
import threading
import time

from genloop import kernel
from genloop.kernel import Event, checkpoint

HOST = "127.0.0.1"
#: Upper bound of every wait; passing tests finish far sooner.
DEADLINE = 5.0


@contextlib.contextmanager
def server_thread(start, *args, **kwargs):
    """Run ``server = yield from start(*args, **kwargs)`` in a kernel on its own thread.

    Yields the ``Server`` (its ``port`` is live). For tests whose clients are
    plain threads or blocking sockets. On exit the server shuts down and the
    kernel's thread is joined; a failure in it fails the test.
    """
    ready = threading.Event()
    stop = Event()          # set from the test's thread: Event.set works from any thread
    box = {}

    def main():
        server = yield from start(*args, **kwargs)
        box["server"] = server
        ready.set()
        yield from stop.wait()
        yield from server.shutdown(0)

    def target():
        try:
            kernel.run(main)
        except BaseException as e:  # noqa: BLE001 - reported in the test's thread
            box["error"] = e
            ready.set()

    thread = threading.Thread(target=target, name="net-test-kernel", daemon=True)
    thread.start()
    assert ready.wait(DEADLINE), "the server did not start"
    if "error" in box:
        raise box["error"]
    try:
        yield box["server"]
    finally:
        stop.set()
        thread.join(DEADLINE)
        assert not thread.is_alive(), "the server's kernel did not stop"
    if "error" in box:
        raise box["error"]


def connect(port: int, timeout: float = DEADLINE) -> socket.socket:
    """A blocking client socket whose every call gives up after ``timeout``."""
    return socket.create_connection((HOST, port), timeout=timeout)


def recv_until_eof(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def until(condition, what: str = "condition"):
    """Inside a task: take checkpoints until ``condition()`` holds (bounded by real time)."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {DEADLINE} s waiting for {what}")
        yield from checkpoint()


#: The address space a memory-test server may add to its startup size: a
#: server that gathers what it should bound fails fast (MemoryError) instead
#: of taking the machine's memory.
MEMORY_HEADROOM = 1 << 30


def rss(pid: int) -> int:
    """The resident set of process ``pid``, in bytes (``/proc/<pid>/status``)."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def cap_memory() -> None:
    """In a server process: limit its address space to its size now + MEMORY_HEADROOM."""
    with open("/proc/self/status") as f:
        size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (size + MEMORY_HEADROOM, size + MEMORY_HEADROOM))


@contextlib.contextmanager
def server_process(module: str):
    """Run ``python -m module`` (which prints its port first); yield ``(process, port)``."""
    env = dict(os.environ, MALLOC_ARENA_MAX="2")        # fewer malloc arenas: RSS means what it says
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-m", module], stdout=subprocess.PIPE, cwd=root, env=env)
    try:
        port = int(proc.stdout.readline())
        yield proc, port
    finally:
        proc.kill()
        proc.wait(DEADLINE)
        proc.stdout.close()
