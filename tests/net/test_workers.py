"""run_workers: kernels in forked processes sharing a port with SO_REUSEPORT."""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from genloop.net import run_workers
from tests.net.netutil import DEADLINE, HOST, connect, recv_until_eof

pytestmark = pytest.mark.timeout(10)

#: A two-worker server: each answers with its pid; argv[1] is the port.
SERVER = textwrap.dedent("""
    import os, sys
    from genloop.net import Response, run_workers, serve_http

    def pid(request):
        return Response(200, str(os.getpid()).encode())
        yield

    def main(port):
        server = yield from serve_http(pid, "127.0.0.1", port, reuse_port=True)
        yield from server.serve_forever()

    codes = run_workers(main, int(sys.argv[1]), workers=2)
    print(codes, flush=True)
""")


def reserved_port() -> socket.socket:
    """A socket bound with SO_REUSEPORT, not listening: it holds a port the workers can share."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((HOST, 0))
    return sock


def ask_pid(port: int):
    try:
        with connect(port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            return int(recv_until_eof(sock).rpartition(b"\r\n\r\n")[2])
    except (OSError, ValueError):
        return None                     # no worker listening yet, or one going down


def test_two_workers_share_the_port_and_stop_with_the_parent():
    with reserved_port() as reserve:
        port = reserve.getsockname()[1]
        parent = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        try:
            pids = set()
            answers = 0
            deadline = time.monotonic() + DEADLINE
            # Bounded polling: each connection lands on one worker by the hash
            # of its address; 500 answers from one only would be a broken port.
            while len(pids) < 2 and answers < 500 and time.monotonic() < deadline:
                if (pid := ask_pid(port)) is None:
                    time.sleep(0.01)                           # the workers are still starting
                else:
                    pids.add(pid)
                    answers += 1
            assert len(pids) == 2 or parent.poll() is not None, f"only {pids} answered"
            parent.send_signal(signal.SIGTERM)                 # forwarded to both workers
            out, err = parent.communicate(timeout=DEADLINE)
        finally:
            if parent.poll() is None:
                parent.kill()
                parent.communicate()
    assert len(pids) == 2 and parent.pid not in pids, f"answers from {pids}; parent said {err!r}"
    assert parent.returncode == 0, err
    assert json.loads(out.strip()) == [0, 0], (out, err)          # both drained and exited cleanly
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_one_worker_runs_in_this_process():
    def main(x):
        return os.getpid(), x
        yield

    assert run_workers(main, 42) == (os.getpid(), 42)


def test_a_worker_that_fails_exits_with_status_1():
    def main():
        raise RuntimeError("worker failed")
        yield

    assert run_workers(main, workers=2) == [1, 1]


def test_workers_must_be_positive():
    with pytest.raises(ValueError):
        run_workers(lambda: None, workers=0)
