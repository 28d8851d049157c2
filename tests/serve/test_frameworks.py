"""A Flask app and a minimal Django project served by `python -m genloop serve`, driven by httpx and curl."""
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.serve.serveutil import DEADLINE, Serve

ROOT = Path(__file__).resolve().parents[2]
APPS = {"flask": "tests.serve.apps.flask_app:app", "django": "tests.serve.apps.django_site.wsgi:application"}
#: Django reads CONTENT_LENGTH bytes of a body and no more, so a streamed chunked body looks empty to it.
OPTIONS = {"flask": (), "django": ("--spool-chunked",)}
HELLO = {"flask": "Hello, World!", "django": "Hello from Django"}
SOURCE = {"flask": Path(__file__).parent / "apps" / "flask_app.py",
          "django": Path(__file__).parent / "apps" / "django_site" / "urls.py"}


@pytest.fixture(scope="module", params=sorted(APPS))
def site(request):
    """``(framework, base url)`` of `genloop serve` running that framework's app."""
    pytest.importorskip(request.param)
    with Serve(APPS[request.param], "--bind", "127.0.0.1:0", "--threads", "4", *OPTIONS[request.param],
               cwd=ROOT) as server:
        yield request.param, server.url
        server.signal()
        assert server.wait() == 0, "".join(server.lines)


@pytest.fixture(scope="module")
def upload_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("upload") / "blob.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 5))      # past the in-memory spool: a temporary file
    return path


def test_httpx_hello_keep_alive(site):
    name, url = site
    with httpx.Client(base_url=url, timeout=DEADLINE) as client:
        for _ in range(20):
            r = client.get("/")
            assert (r.status_code, r.text) == (200, HELLO[name])


def test_httpx_upload(site, upload_file):
    name, url = site
    data = upload_file.read_bytes()
    with upload_file.open("rb") as f:
        r = httpx.post(f"{url}/upload", files={"file": ("blob.bin", f)}, data={"field": "v"}, timeout=DEADLINE)
    assert r.json() == {"name": "blob.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "field": "v"}


def test_httpx_streaming(site):
    name, url = site
    with httpx.stream("GET", f"{url}/stream?n=200", timeout=DEADLINE) as r:
        assert r.headers.get("transfer-encoding") == "chunked"
        lines = list(r.iter_lines())
    assert len(lines) == 200 and lines[-1].endswith("199")


def test_httpx_file_response(site):
    name, url = site
    r = httpx.get(f"{url}/file", timeout=DEADLINE)
    assert r.status_code == 200 and r.content == SOURCE[name].read_bytes()


def test_httpx_error_is_500_and_the_server_goes_on(site):
    name, url = site
    with httpx.Client(base_url=url, timeout=DEADLINE) as client:
        assert client.get("/boom").status_code == 500
        assert client.get("/").text == HELLO[name]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl (Debian package curl)")
def test_curl_upload_stream_and_error(site, upload_file):
    name, url = site
    data = upload_file.read_bytes()

    def curl(*args):
        return subprocess.run(["curl", "-sS", "--max-time", str(DEADLINE), *args], capture_output=True, check=True).stdout

    answer = json.loads(curl("-F", f"file=@{upload_file}", "-F", "field=v", f"{url}/upload"))
    assert answer["sha256"] == hashlib.sha256(data).hexdigest()
    # A chunked request body (curl sends Expect: 100-continue for it, too).
    answer = json.loads(curl("-H", "Transfer-Encoding: chunked", "-F", f"file=@{upload_file}", f"{url}/upload"))
    assert answer["size"] == len(data)
    assert curl(f"{url}/stream?n=3").decode().count("\n") == 3
    assert curl("-o", "/dev/null", "-w", "%{http_code}", f"{url}/boom") == b"500"
    assert curl("--http1.0", f"{url}/").decode() == HELLO[name]
