"""Graceful stop: SIGTERM and SIGINT stop servers with grace; signals reach tasks through signal_receiver."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from genloop import kernel
from genloop.kernel import Event, Terminated, request_stop, signal_receiver, sleep, spawn, stopping
from genloop.kernel.traps import IO, WRITE
from genloop.net import Response, serve_http
from tests.net.netutil import DEADLINE, HOST, connect, recv_until_eof, until

pytestmark = pytest.mark.timeout(20)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: An HTTP server whose requests take ?s= seconds and answer SIZE bytes; prints READY,
#: "start" per request and "finally". argv: port, workers[, SIZE].
SERVER = textwrap.dedent("""
    import os, sys
    from genloop.kernel import sleep
    from genloop.net import Response, run_workers, serve_http

    def say(*words):            # one write(2) per line: workers share the pipe
        os.write(1, (" ".join(map(str, words)) + "\\n").encode())

    def app(request):
        say("start")
        yield from sleep(float(request.params.get("s", "0")))
        return Response(200, b"done " + request.path.encode() + b" " + b"x" * SIZE)

    def main(port):
        server = yield from serve_http(app, "127.0.0.1", port, reuse_port=True, stop_grace=5)
        say("READY", server.port)
        try:
            yield from server.serve_forever()
        finally:
            say("finally")

    SIZE = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
    say("codes", run_workers(main, int(sys.argv[1]), workers=int(sys.argv[2])))
""")


def get(port, path, *, keep_alive=False):
    sock = connect(port)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{'' if keep_alive else 'Connection: close'}\r\n\r\n".encode())
    return sock


def read_lines(proc, want, count):
    """Read proc's stdout until ``count`` lines start with ``want``; return every line read."""
    lines = []
    deadline = time.monotonic() + DEADLINE
    while sum(line.startswith(want) for line in lines) < count:
        assert time.monotonic() < deadline, f"no {count} x {want!r} in {lines}"
        line = proc.stdout.readline()
        assert line, f"the server exited early: {lines}, {proc.stderr.read()}"
        lines.append(line.strip())
    return lines


def start_server(workers=1, port=0, size=100000):
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(workers), str(size)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = read_lines(proc, "READY", workers)
    return proc, int(lines[-1].split()[1])


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_requests_in_flight_finish_and_exits_0(workers):
    with socket.socket() as reserve:        # a port every worker can bind (SO_REUSEPORT)
        reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reserve.bind((HOST, 0))
        proc, port = start_server(workers, reserve.getsockname()[1])
        try:
            clients = [get(port, "/slow?s=1") for _ in range(4)]
            read_lines(proc, "start", 4)          # all four are in their handlers
            proc.send_signal(signal.SIGTERM)
            replies = [recv_until_eof(c) for c in clients]
            out, err = proc.communicate(timeout=DEADLINE)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for reply in replies:
        assert reply.startswith(b"HTTP/1.1 200 ") and b"connection: close" in reply.lower(), reply[:200]
        assert reply.endswith(b"x" * 100000)
    assert proc.returncode == 0, err
    assert out.count("finally") == workers, out
    if workers > 1:
        assert f"codes {[0] * workers}" in out, out


def test_a_graceful_stop_closes_idle_connections_and_finishes_busy_ones():
    release = Event()
    waiting = []

    def app(request):
        if request.path == "/wait":
            waiting.append(request)
            yield from release.wait()
        return Response(200, b"ok " + request.path.encode())

    def main():
        server = yield from serve_http(app, HOST, 0)
        results = {}

        def clients():
            idle = get(server.port, "/first", keep_alive=True)
            first = idle.recv(65536)                            # answered; now idle, kept alive
            busy = get(server.port, "/wait", keep_alive=True)
            results["ready"] = True
            results["idle"] = first, recv_until_eof(idle)       # closed by the stop
            results["busy"] = recv_until_eof(busy)              # answered, then closed
            idle.close()
            busy.close()

        thread = threading.Thread(target=clients)
        thread.start()
        yield from until(lambda: waiting, "the busy request to reach the app")
        assert request_stop()
        assert stopping().is_set()
        yield from until(lambda: "idle" in results, "the idle connection to close")
        assert "busy" not in results
        release.set()
        yield from server.serve_forever()                       # returns once drained
        return results, thread

    results, thread = kernel.run(main)
    thread.join(DEADLINE)
    first, rest = results["idle"]
    assert first.endswith(b"ok /first") and rest == b""
    assert results["busy"].startswith(b"HTTP/1.1 200 ") and results["busy"].endswith(b"ok /wait")
    assert b"connection: close" in results["busy"].lower()


def test_a_stop_cancels_a_main_that_does_not_serve_and_run_raises_terminated():
    cleaned = []

    def stopper():
        yield
        request_stop()

    def main():
        try:
            yield from spawn(stopper)
            yield from sleep(3600)
        finally:
            cleaned.append("main")

    with pytest.raises(Terminated) as info:
        kernel.run(main)
    assert info.value.code == 0 and cleaned == ["main"]


def test_sigint_drains_then_raises_keyboard_interrupt():
    release = Event()
    answered, waiting = [], []

    def app(request):
        waiting.append(request)
        yield from release.wait()
        return Response(200, b"late but whole")

    def main():
        server = yield from serve_http(app, HOST, 0)

        def client():
            with get(server.port, "/") as sock:
                answered.append(recv_until_eof(sock))

        thread = threading.Thread(target=client)
        thread.start()
        yield from until(lambda: waiting, "the request to reach the app")
        signal.raise_signal(signal.SIGINT)
        yield from until(lambda: server.listener.closed, "the stop to close the listener")
        release.set()
        yield from server.serve_forever()
        box.append(thread)

    previous = signal.getsignal(signal.SIGINT)
    box = []
    with pytest.raises(KeyboardInterrupt):
        kernel.run(main)
    box[0].join(DEADLINE)
    assert answered and answered[0].endswith(b"late but whole")
    assert signal.getsignal(signal.SIGINT) is previous       # run put the old handler back


def test_a_second_sigint_stops_at_once():
    waiting = []

    def app(request):
        waiting.append(request)
        yield from sleep(3600)                 # never answers
        return Response(200)

    def main():
        server = yield from serve_http(app, HOST, 0, stop_grace=3600)
        sock = get(server.port, "/")
        yield from until(lambda: waiting, "the request to reach the app")
        signal.raise_signal(signal.SIGINT)
        yield from until(lambda: server.listener.closed, "the stop to begin")
        signal.raise_signal(signal.SIGINT)     # the impatient second Ctrl-C
        yield from sleep(3600)
        sock.close()

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        kernel.run(main)
    assert time.monotonic() - started < DEADLINE


def test_signal_receiver_gets_signals_inside_the_kernel_and_takes_sigterm_from_the_stop():
    def main():
        with signal_receiver(signal.SIGUSR1, signal.SIGTERM) as signals:
            os.kill(os.getpid(), signal.SIGUSR1)
            first = yield from signals.get()
            os.kill(os.getpid(), signal.SIGTERM)            # to the receiver, not a graceful stop
            second = yield from signals.get()
        return first, second, stopping().is_set()

    before = signal.getsignal(signal.SIGUSR1)
    assert kernel.run(main) == (signal.SIGUSR1, signal.SIGTERM, False)
    assert signal.getsignal(signal.SIGUSR1) is before


async def await_one_signal():
    with signal_receiver(signal.SIGUSR2) as signals:
        signal.raise_signal(signal.SIGUSR2)
        return await signals.get()


def test_signal_receiver_works_with_await():
    assert kernel.run(await_one_signal) == signal.SIGUSR2


def test_signal_receiver_needs_a_kernel_on_the_main_thread():
    box = []

    def main():
        try:
            signal_receiver(signal.SIGUSR1)
        except RuntimeError as e:
            box.append(e)
        yield

    thread = threading.Thread(target=kernel.run, args=(main,))
    thread.start()
    thread.join(DEADLINE)
    assert box and "main thread" in str(box[0])


def test_run_off_the_main_thread_leaves_signal_handlers_alone():
    seen = []

    def main():
        seen.append(signal.getsignal(signal.SIGTERM))
        yield

    thread = threading.Thread(target=kernel.run, args=(main,))
    thread.start()
    thread.join(DEADLINE)
    assert seen == [signal.SIG_DFL]


NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream genloop {{
        server 127.0.0.1:{a} max_fails=0;
        server 127.0.0.1:{b} max_fails=0;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://genloop;
            proxy_next_upstream error timeout;
            proxy_connect_timeout 1s;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Backend:
    """A genloop HTTP server subprocess on a fixed port, its output drained by a thread."""

    def __init__(self, port):
        self.port = port
        self.proc, _ = start_server(1, port, size=100)
        self.lines = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(DEADLINE)
        self.reader.join(DEADLINE)
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian package nginx-light)")
@pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed (Debian package wrk)")
def test_nginx_loses_no_request_while_a_backend_restarts_under_wrk_load(tmp_path):
    """Two backends behind nginx under wrk; one gets SIGTERM and comes back: 0 errors, 0 non-2xx."""
    ports = {"a": free_port(), "b": free_port(), "port": free_port()}
    (tmp_path / "nginx.conf").write_text(NGINX_CONF.format(dir=tmp_path, **ports))
    backends = [Backend(ports["a"]), Backend(ports["b"])]
    nginx = subprocess.Popen([NGINX, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wrk = None
    try:
        deadline = time.monotonic() + DEADLINE
        while True:                                 # nginx is up once it answers through a backend
            try:
                with get(ports["port"], "/") as sock:
                    if recv_until_eof(sock).startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                pass
            assert nginx.poll() is None and time.monotonic() < deadline, nginx.stderr.read()
            time.sleep(0.05)
        wrk = subprocess.Popen(["wrk", "-t1", "-c16", "-d4s", f"http://{HOST}:{ports['port']}/"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        first = backends[0]
        deadline = time.monotonic() + DEADLINE
        while len(first.lines) < 200:               # the load reaches the first backend
            assert time.monotonic() < deadline, "no load reached the first backend"
            time.sleep(0.01)
        assert first.stop() == 0                    # SIGTERM under load: drains and exits 0
        assert "finally\n" in first.lines
        backends[0] = Backend(ports["a"])           # ...and comes back on the same port
        report, _ = wrk.communicate(timeout=DEADLINE + 10)
        restarted = len(backends[0].lines)
    finally:
        if wrk is not None and wrk.poll() is None:
            wrk.kill()
        for backend in backends:
            backend.kill()
        nginx.terminate()
        nginx.wait(DEADLINE)
    assert "requests in" in report, report
    assert "Socket errors" not in report and "Non-2xx" not in report, report
    assert restarted > 1, "the restarted backend got no load"          # READY, then requests


def waiting_to_write(task) -> bool:
    trap = task and task.trap
    return task is not None and task.state == "waiting" and trap and trap[0] == IO and trap[2] == WRITE


def test_a_graceful_stop_finishes_sending_a_big_answer_to_a_slow_reader():
    big = b"y" * (8 << 20)                 # far more than the socket buffers hold

    def app(request):
        return Response(200, big)
        yield

    def main():
        server = yield from serve_http(app, HOST, 0)
        sock = get(server.port, "/big", keep_alive=True)
        yield from until(lambda: waiting_to_write(server.connections._any_child()), "the socket buffers to fill")
        request_stop()
        yield from until(lambda: server.listener.closed, "the stop to begin")
        reader = threading.Thread(target=lambda: box.append(recv_until_eof(sock)))
        reader.start()                     # only now does the client read
        yield from server.serve_forever()
        return reader

    box = []
    kernel.run(main).join(DEADLINE)
    assert box and box[0].endswith(big[-100:]) and len(box[0].partition(b"\r\n\r\n")[2]) == len(big)


def test_a_signal_that_cannot_be_caught_is_refused_and_leaves_nothing_behind():
    def main():
        with pytest.raises(OSError):
            with signal_receiver(signal.SIGKILL):
                pass
        with signal_receiver(signal.SIGUSR1) as signals:      # the hub still works
            signal.raise_signal(signal.SIGUSR1)
            return (yield from signals.get())

    assert kernel.run(main) == signal.SIGUSR1
