"""The monitor is a remote control: private by default, deaf to web pages, bounded, never spinning."""
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from genloop.kernel import current_kernel, run, sleep, spawn
from genloop.kernel.monitor import MAX_CLIENTS, PROMPT, connect_monitor, runtime_dir

pytestmark = pytest.mark.timeout(30)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOBODY = 65534


@pytest.fixture(autouse=True)
def private_runtime(monkeypatch):
    """A runtime base any user may traverse, so only the monitor's own modes keep others out."""
    base = tempfile.mkdtemp(prefix="genloop-test-run-")
    os.chmod(base, 0o755)
    monkeypatch.setenv("XDG_RUNTIME_DIR", base)
    yield base
    subprocess.run(["rm", "-rf", base], check=False)


def read_prompt(conn) -> bytes:
    data = b""
    while not data.endswith(PROMPT):
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    return data


def read_to_eof(conn) -> bytes:
    return b"".join(iter(lambda: conn.recv(65536), b""))


def napper():
    yield from sleep(60)


def with_monitor(test, setting=True):
    """Run ``test(monitor, nap)`` on an IO thread while ``run(monitor=setting)`` serves; its result."""
    from genloop.kernel import Dispatchers, with_context

    def main():
        nap = yield from spawn(napper, name="napper")
        result = yield from with_context(Dispatchers.IO, test, current_kernel().monitor, nap)
        nap.cancel()
        return result

    return run(main, monitor=setting)


def test_the_default_is_a_private_unix_socket_and_it_says_where(capfd):
    def look(monitor, nap):
        with connect_monitor(**monitor.address, timeout=5) as conn:
            greeting = read_prompt(conn)
        return monitor.path, stat.S_IMODE(os.stat(monitor.path).st_mode), \
            stat.S_IMODE(os.stat(os.path.dirname(monitor.path)).st_mode), greeting

    path, mode, dir_mode, greeting = with_monitor(look)
    assert path.startswith(os.environ["XDG_RUNTIME_DIR"]) and mode == 0o600 and dir_mode == 0o700
    assert greeting.startswith(b"genloop monitor: type help")
    assert f"genloop monitor on unix:{path}" in capfd.readouterr().err
    assert not os.path.exists(path), "the socket outlived run()"


def as_nobody(fn) -> int:
    """Run ``fn()`` in a forked child as uid 65534; its exit status (fn returns it)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os._exit(fn())
        except BaseException as e:  # noqa: BLE001 - the child must never return into pytest
            os.write(2, f"as uid {NOBODY}: {e!r}\n".encode())
            os._exit(99)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_another_user_cannot_reach_the_unix_socket():
    def attempt(monitor, nap):
        def connect():
            try:
                socket.socket(socket.AF_UNIX).connect(monitor.path)
            except PermissionError:
                return 0
            return 1
        return as_nobody(connect), nap.done

    refused, cancelled = with_monitor(attempt)
    assert refused == 0 and not cancelled


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_tcp_asks_for_a_token_another_user_cannot_read():
    def attempt(monitor, nap):
        def steal():
            try:
                open(monitor.token_file).read()
            except PermissionError:
                pass
            else:
                return 1
            with socket.socket() as conn:          # no getaddrinfo: as nobody, no codec can be imported
                conn.settimeout(5)
                conn.connect(("127.0.0.1", monitor.port))
                conn.sendall(b"cancel %d\n" % nap.id)
                answer = read_to_eof(conn)
            return 0 if b"send auth TOKEN first" in answer else 2

        stranger = as_nobody(steal)
        with connect_monitor(**monitor.address, timeout=5) as conn:      # the owner gets in
            read_prompt(conn)
            conn.sendall(b"ps\n")
            ps = read_prompt(conn)
        return stranger, nap.done, ps, stat.S_IMODE(os.stat(monitor.token_file).st_mode)

    stranger, cancelled, ps, mode = with_monitor(attempt, setting=0)
    assert stranger == 0 and not cancelled and b"napper" in ps and mode == 0o600


def test_a_connection_that_speaks_http_is_closed_before_its_body():
    def post(monitor, nap):
        with connect_monitor(**monitor.address, timeout=5) as conn:
            read_prompt(conn)
            conn.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 9\r\n\r\ncancel %d\n" % nap.id)
            answer = read_to_eof(conn)
        return answer, nap.done

    answer, cancelled = with_monitor(post)
    assert answer == b"" and not cancelled


def test_connections_are_capped():
    def crowd(monitor, nap):
        conns = [connect_monitor(**monitor.address, timeout=5) for _ in range(MAX_CLIENTS)]
        try:
            greetings = [read_prompt(c) for c in conns]
            with connect_monitor(**monitor.address, timeout=5) as extra:
                refused = read_to_eof(extra)
        finally:
            for c in conns:
                c.close()
        return greetings, refused

    greetings, refused = with_monitor(crowd)
    assert all(g.endswith(PROMPT) for g in greetings) and b"connections already; bye" in refused


def test_a_planted_runtime_dir_is_refused(private_runtime):
    os.mkdir(os.path.join(private_runtime, "genloop"), 0o755)
    os.chmod(os.path.join(private_runtime, "genloop"), 0o755)
    with pytest.raises(PermissionError, match="mode 0700"):
        runtime_dir()


def test_the_client_survives_bytes_that_are_not_utf8():
    def pipe(monitor, nap):
        return subprocess.run([sys.executable, "-m", "genloop.demos.cli", "monitor", "--socket", monitor.path],
                              input=b"\xff\xfe\n\xc3(ps\nps\n", capture_output=True, timeout=20, cwd=ROOT)

    r = with_monitor(pipe)
    assert r.returncode == 0, r.stderr
    assert b"unknown command" in r.stdout and b"napper" in r.stdout


HOARDER = """
import os, resource, sys, threading
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
from genloop import run, sleep
from genloop.kernel import current_kernel
hoard = []
def release():
    sys.stdin.readline()
    for fd in hoard:
        os.close(fd)
def main():
    print(current_kernel().monitor.path, flush=True)
    threading.Thread(target=release, daemon=True).start()
    try:
        while True:
            hoard.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass
    print(len(hoard), flush=True)
    yield from sleep(30)
run(main, monitor=True)
"""


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads CPU time from /proc")
def test_out_of_descriptors_the_monitor_rests_instead_of_spinning():
    proc = subprocess.Popen([sys.executable, "-c", HOARDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=ROOT, env=os.environ.copy())
    try:
        path = proc.stdout.readline().decode().strip()
        assert int(proc.stdout.readline()) > 0            # every descriptor is taken now
        client = socket.socket(socket.AF_UNIX)
        client.settimeout(10)
        client.connect(path)                              # waits in the backlog: accept fails with EMFILE
        before = cpu_seconds(proc.pid)
        time.sleep(1.0)                                   # a measuring window, not a wait for an event
        spent = cpu_seconds(proc.pid) - before
        proc.stdin.write(b"\n")
        proc.stdin.flush()                                # descriptors back: the client gets in
        greeting = read_prompt(client)
        client.close()
    finally:
        proc.kill()
        proc.wait(5)
        proc.stdin.close()
        proc.stdout.close()
    assert spent < 0.2, f"the monitor burnt {spent:.2f} s of CPU in 1 s while accept failed"
    assert greeting.startswith(b"genloop monitor")


def test_the_monitor_thread_is_named_and_stopped():
    def names(monitor, nap):
        return [t.name for t in threading.enumerate()]

    assert "genloop-monitor" in with_monitor(names)
    assert "genloop-monitor" not in [t.name for t in threading.enumerate()]


def test_the_client_finds_the_one_running_monitor_by_itself():
    def pipe(monitor, nap):
        return subprocess.run([sys.executable, "-m", "genloop.demos.cli", "monitor"], input=b"ps\n",
                              capture_output=True, timeout=20, cwd=ROOT)

    r = with_monitor(pipe)
    assert r.returncode == 0, r.stderr
    assert b"napper" in r.stdout
    r = subprocess.run([sys.executable, "-m", "genloop.demos.cli", "monitor"], input=b"ps\n",
                       capture_output=True, timeout=20, cwd=ROOT)
    assert r.returncode == 1 and b"no monitor is running" in r.stderr
