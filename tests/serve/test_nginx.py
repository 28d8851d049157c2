"""genloop serve behind nginx (Debian package nginx-light), as docs/serve.md sets it up: keep-alive upstream."""
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.serve.serveutil import DEADLINE, Serve

NGINX = shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/usr/bin:/usr/local/bin")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.skipif(NGINX is None, reason="needs nginx (Debian package nginx-light)"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
pytest.importorskip("flask")

CONFIG = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    upstream app {{
        server {upstream};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 100m;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
        }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nginx_dir():
    """nginx's folder: pytest's tmp_path sits under a mode-0700 folder, which nginx's worker
    (nobody, when the tests run as root) cannot enter to buffer bodies."""
    with tempfile.TemporaryDirectory(prefix="genloop-nginx-") as folder:
        path = Path(folder)
        path.chmod(0o755)
        for name in ("body", "proxy"):
            (path / name).mkdir()
            (path / name).chmod(0o777)
        yield path


@pytest.fixture
def nginx_front(nginx_dir):
    """(nginx's url, the Serve behind it)."""
    tmp_path = nginx_dir
    with Serve("tests.serve.apps.flask_app:app", "-b", "127.0.0.1:0", "--keep-alive", "75", cwd=ROOT) as app:
        port = _free_port()
        (tmp_path / "nginx.conf").write_text(CONFIG.format(dir=tmp_path, port=port, upstream=app.url.split("//")[1]))
        proc = subprocess.Popen([NGINX, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 3 * DEADLINE
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
                    time.sleep(0.05)
            yield f"http://127.0.0.1:{port}", app
        finally:
            proc.terminate()
            proc.wait(DEADLINE)
            proc.stderr.close()


def test_behind_nginx(nginx_front, nginx_dir):
    url, app = nginx_front
    with httpx.Client(base_url=url, timeout=DEADLINE) as client:
        for _ in range(20):
            assert client.get("/").text == "Hello, World!"
        data = os.urandom(2 * 1024 * 1024)
        r = client.post("/upload", files={"file": ("b.bin", data)})
        assert r.status_code == 200, (r.status_code, r.text[:300], (nginx_dir / "error.log").read_text())
        assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()
        with client.stream("GET", "/stream?n=50") as r:
            assert len(list(r.iter_lines())) == 50
        assert client.get("/boom").status_code == 500
        assert client.get("/").status_code == 200
    app.signal()
    assert app.wait() == 0
