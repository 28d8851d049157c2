"""Shared harness of the WSGI server tests: an app served on a kernel thread, or `genloop serve` in a subprocess."""
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from wsgiref.validate import validator

from genloop.net.wsgi import serve_wsgi
from tests.net.netutil import DEADLINE, HOST, connect, recv_until_eof, server_thread

__all__ = ["DEADLINE", "HOST", "connect", "recv_until_eof", "served", "Serve", "exchange", "blob_and_sendfile_calls"]


@contextlib.contextmanager
def served(app, *, validate=True, **kwargs):
    """``app`` (inside ``wsgiref.validate.validator`` unless told not) served by ``serve_wsgi`` on a free port."""
    with server_thread(serve_wsgi, validator(app) if validate else app, HOST, 0, **kwargs) as server:
        yield server


def blob_and_sendfile_calls(tmp_path, monkeypatch, size: int):
    """``(path, data, calls)``: a file of ``size`` random bytes, and the list ``os.sendfile``'s calls go to (it still sends)."""
    path = tmp_path / "blob"
    data = os.urandom(size)
    path.write_bytes(data)
    calls = []
    real = os.sendfile
    monkeypatch.setattr(os, "sendfile", lambda *a: calls.append(a) or real(*a))
    return path, data, calls


def exchange(port: int, raw: bytes) -> bytes:
    """Send ``raw`` on a new connection, half-close, return everything the server sends."""
    with connect(port) as s:
        s.sendall(raw)
        s.shutdown(1)
        return recv_until_eof(s)


class Serve:
    """``python -m genloop serve ARGS`` in a subprocess of its own, run from ``cwd``; ``url`` once it listens."""

    def __init__(self, *args, cwd, env=None):
        self.proc = subprocess.Popen([sys.executable, "-m", "genloop", "serve", *args], cwd=cwd,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.lines = []
        self.url = self._wait_for(r"Listening at: (\S+)")

    def _wait_for(self, pattern):
        deadline = time.monotonic() + 3 * DEADLINE
        for line in self.proc.stderr:
            self.lines.append(line)
            if found := re.search(pattern, line):
                return found.group(found.re.groups and 1)
            if time.monotonic() > deadline:
                break
        self.stop()
        raise AssertionError(f"no {pattern!r} from genloop serve:\n{''.join(self.lines)}")

    def signal(self, signum=signal.SIGTERM):
        self.proc.send_signal(signum)

    def wait(self, timeout=3 * DEADLINE) -> int:
        code = self.proc.wait(timeout)
        self.lines += self.proc.stderr.readlines()
        return code

    def stop(self):
        """Kill what is left of it, workers included (its own process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
