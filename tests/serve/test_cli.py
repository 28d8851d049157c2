"""`python -m genloop serve` as a supervisor sees it: signals, exit codes, binds, TLS, workers, logs."""
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.serve.serveutil import DEADLINE, Serve

ROOT = Path(__file__).resolve().parents[2]
FLASK = "tests.serve.apps.flask_app:app"

pytest.importorskip("flask")


def _get_in_thread(url, box):
    def target():
        try:
            box["response"] = httpx.get(url, timeout=3 * DEADLINE)
        except Exception as e:  # noqa: BLE001 - reported by the test
            box["error"] = e
    thread = threading.Thread(target=target)
    thread.start()
    return thread


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_lets_the_request_in_flight_finish_then_exits_0(signum):
    with Serve(FLASK, "-b", "127.0.0.1:0", "--graceful-timeout", "10", cwd=ROOT) as server:
        idle = httpx.Client(base_url=server.url, timeout=DEADLINE)
        assert idle.get("/").status_code == 200             # an idle keep-alive connection
        box = {}
        thread = _get_in_thread(f"{server.url}/slow?s=1", box)
        server._wait_for(r"slow: started")
        server.signal(signum)
        thread.join(3 * DEADLINE)
        assert "error" not in box, box
        assert (box["response"].status_code, box["response"].text) == (200, "slow done")
        assert box["response"].headers["connection"] == "close"
        assert server.wait() == 0, "".join(server.lines)
        with pytest.raises(httpx.TransportError):            # no longer listening
            httpx.get(server.url, timeout=DEADLINE)
        idle.close()


def test_a_stop_signal_lets_an_upload_in_flight_finish():
    """The app reads the body as it comes: SIGTERM mid-upload still lets the client send the rest and get the answer."""
    with Serve(FLASK, "-b", "127.0.0.1:0", "--graceful-timeout", "10", cwd=ROOT) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=3 * DEADLINE) as s:
            s.sendall(b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + b"a" * 100000)
            server._wait_for(r"count: started")
            server.signal()
            server._wait_for(r"stopping gracefully")
            s.sendall(b"a" * 100000)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        # The answer says Connection: close only once the server's stop hook has
        # run, a turn or two after the log line above: a race the client cannot
        # see. What it does see: the whole answer, then the connection's end.
        assert answer.startswith(b"HTTP/1.1 200 OK")
        assert answer.endswith(b"\r\n\r\n200000")
        assert server.wait() == 0, "".join(server.lines)


def test_a_request_past_the_graceful_timeout_does_not_hold_the_exit():
    with Serve(FLASK, "-b", "127.0.0.1:0", "--graceful-timeout", "0.5", cwd=ROOT) as server:
        box = {}
        thread = _get_in_thread(f"{server.url}/slow?s=30", box)
        server._wait_for(r"slow: started")
        start = time.monotonic()
        server.signal()
        assert server.wait() == 0
        assert time.monotonic() - start < DEADLINE
        thread.join(3 * DEADLINE)
        assert "error" in box                                # it was cut: the process is gone


def test_a_second_sigint_cuts_the_stop_short_and_exits_130():
    with Serve(FLASK, "-b", "127.0.0.1:0", "--graceful-timeout", "30", cwd=ROOT) as server:
        box = {}
        thread = _get_in_thread(f"{server.url}/slow?s=3", box)     # would finish well within the grace
        server._wait_for(r"slow: started")
        server.signal(signal.SIGINT)
        server._wait_for(r"stopping gracefully")
        start = time.monotonic()
        server.signal(signal.SIGINT)                         # the second Ctrl-C
        assert server.wait() == 130, "".join(server.lines)          # a drained stop exits 0
        assert time.monotonic() - start < 3 * DEADLINE
        thread.join(3 * DEADLINE)
        assert "error" in box, box                          # its connection was cut, not answered


def test_timeout_answers_503():
    with Serve(FLASK, "-b", "127.0.0.1:0", "--timeout", "0.5", "--graceful-timeout", "0", cwd=ROOT) as server:
        r = httpx.get(f"{server.url}/slow?s=3", timeout=DEADLINE)
        assert r.status_code == 503
        assert httpx.get(server.url, timeout=DEADLINE).status_code == 200


def test_a_unix_socket_and_a_port_at_once_with_an_access_log(tmp_path):
    sock, log = tmp_path / "app.sock", tmp_path / "access.log"
    with Serve(FLASK, "--bind", f"unix:{sock}", "--bind", "127.0.0.1:0", "--access-log", str(log), cwd=ROOT) as server:
        assert server.url == f"unix:{sock}"
        tcp = server._wait_for(r"Listening at: (\S+)")
        assert httpx.get(tcp, timeout=DEADLINE).text == "Hello, World!"
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), timeout=DEADLINE) as client:
            r = client.get("http://localhost/stream?n=2", headers={"Referer": "http://r/", "User-Agent": "t/1"})
        assert r.text.count("line") == 2
        server.signal()
        assert server.wait() == 0
    line = log.read_text().splitlines()[-1]
    assert line.startswith("- - - [") and line.endswith('"GET /stream?n=2 HTTP/1.1" 200 30 "http://r/" "t/1"')
    assert not sock.exists()


def test_workers_share_the_port():
    with Serve(FLASK, "-b", "127.0.0.1:0", "--workers", "2", cwd=ROOT) as server:
        server._wait_for(r"Listening at")                   # the second worker
        pids = set()
        deadline = time.monotonic() + DEADLINE
        while len(pids) < 2 and time.monotonic() < deadline:
            pids.add(httpx.get(f"{server.url}/pid", timeout=DEADLINE).text)   # a new connection each
        assert len(pids) == 2
        server.signal()
        assert server.wait() == 0, "".join(server.lines)


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_workers_stop_when_their_parent_is_killed():
    with Serve(FLASK, "-b", "127.0.0.1:0", "--workers", "2", cwd=ROOT) as server:
        server._wait_for(r"Listening at")
        pids = set()
        deadline = time.monotonic() + DEADLINE
        while len(pids) < 2 and time.monotonic() < deadline:
            pids.add(int(httpx.get(f"{server.url}/pid", timeout=DEADLINE).text))
        assert len(pids) == 2
        server.proc.kill()                                  # SIGKILL: nothing is passed on
        server.proc.wait()
        deadline = time.monotonic() + 3 * DEADLINE
        while not all(map(_gone, pids)):
            assert time.monotonic() < deadline, f"workers {pids} outlived their parent"
            time.sleep(0.05)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl (Debian package openssl)")
def test_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    with Serve(FLASK, "-b", "127.0.0.1:0", "--certfile", str(cert), "--keyfile", str(key), cwd=ROOT) as server:
        assert server.url.startswith("https://")
        with httpx.Client(base_url=server.url, verify=ssl.create_default_context(cafile=str(cert)), timeout=DEADLINE) as client:
            assert client.get("/").text == "Hello, World!"
            assert client.get("/file").content == (ROOT / "tests/serve/apps/flask_app.py").read_bytes()
            assert len(client.get("/stream?n=3000").text.splitlines()) == 3000
        if shutil.which("curl"):
            out = subprocess.run(["curl", "-sS", "--cacert", str(cert), f"{server.url}/"], capture_output=True,
                                 check=True, timeout=DEADLINE)
            assert out.stdout == b"Hello, World!"
        server.signal()
        assert server.wait() == 0


def test_an_app_that_cannot_be_imported_exits_4():
    proc = subprocess.run([sys.executable, "-m", "genloop", "serve", "tests.serve.apps.no_such_module:app"], cwd=ROOT,
                          capture_output=True, text=True, timeout=3 * DEADLINE)
    assert proc.returncode == 4 and "cannot load" in proc.stderr


@pytest.mark.parametrize("bind, parsed", [
    ("127.0.0.1:8001", ("tcp", "127.0.0.1", 8001)), ("[::1]:9000", ("tcp", "::1", 9000)),
    (":8002", ("tcp", "0.0.0.0", 8002)), ("8003", ("tcp", "127.0.0.1", 8003)), ("example.org", ("tcp", "example.org", 8000)),
    ("unix:/run/app.sock", ("unix", "/run/app.sock")),
])
def test_bind_forms_are_gunicorns(bind, parsed):
    from genloop.demos.serve import parse_bind
    assert parse_bind(bind) == parsed
