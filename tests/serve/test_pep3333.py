"""PEP 3333 as apps see it: every app here runs inside wsgiref's validator."""
import os
import socket
import sys
import threading

import httpx
import pytest

from genloop.net.wsgi import request, response
from tests.serve.serveutil import DEADLINE, HOST, blob_and_sendfile_calls, connect, exchange, recv_until_eof, served


def echo_environ(environ, start_response):
    keys = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH",
            "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "wsgi.url_scheme", "HTTP_X_TRACE",
            "HTTP_X_FORWARDED_FOR")
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    lines = [f"{k}={environ.get(k)!s}" for k in keys] + [f"body={body.decode('latin-1')}"]
    start_response("200 OK", [("Content-Type", "text/plain; charset=latin-1")])
    return ["\n".join(lines).encode("latin-1")]


def parse(text: str) -> dict:
    return dict(line.split("=", 1) for line in text.split("\n"))


def test_environ_follows_the_pep():
    with served(echo_environ) as srv:
        r = httpx.post(f"http://{HOST}:{srv.port}/caf%C3%A9/a%2Fb?x=%20y&z", content=b"hello",
                       headers={"X-Trace": "1", "X_Forwarded_For": "forged", "Content-Type": "text/x"})
    env = parse(r.text)
    # PATH_INFO: percent-decoded bytes, as latin-1 ("native strings"); the query stays raw.
    assert env["PATH_INFO"].encode("latin-1") == "/café/a/b".encode()
    assert env["QUERY_STRING"] == "x=%20y&z"
    assert env["REQUEST_METHOD"] == "POST" and env["SCRIPT_NAME"] == ""
    assert env["CONTENT_TYPE"] == "text/x" and env["CONTENT_LENGTH"] == "5" and env["body"] == "hello"
    assert env["SERVER_NAME"] == HOST and env["SERVER_PORT"] == str(srv.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1" and env["REMOTE_ADDR"] == HOST
    assert env["wsgi.url_scheme"] == "http" and env["HTTP_X_TRACE"] == "1"
    assert env["HTTP_X_FORWARDED_FOR"] == "None"          # a header with "_" would forge it: dropped


def test_script_name_is_split_off_the_path():
    with served(echo_environ, script_name="/mount/") as srv:
        env = parse(httpx.get(f"http://{HOST}:{srv.port}/mount/page").text)
    assert env["SCRIPT_NAME"] == "/mount" and env["PATH_INFO"] == "/page"


def test_a_chunked_upload_streams_to_its_end_without_a_length():
    """No CONTENT_LENGTH (it is not known yet), wsgi.input_terminated: readline and iteration end where the body does."""
    def app(environ, start_response):
        stream = environ["wsgi.input"]
        first = stream.readline()
        rest = b"".join(stream)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d %s %d" % (len(first), environ.get("CONTENT_LENGTH", "-").encode(), len(rest))]

    body = b"line one\n" + os.urandom(300_000).replace(b"\n", b"x")

    def chunks():
        for i in range(0, len(body), 7000):
            yield body[i:i + 7000]

    with served(app) as srv, httpx.Client(base_url=f"http://{HOST}:{srv.port}") as client:
        for _ in range(2):                      # the same connection: the body ended where it should
            r = client.post("/", content=chunks())
            assert r.text == f"9 - {len(body) - 9}"


def test_exc_info_before_the_head_replaces_it():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"sorry"]

    with served(app) as srv:
        r = httpx.get(f"http://{HOST}:{srv.port}/")
    assert (r.status_code, r.reason_phrase, r.text) == (500, "Oops", "sorry")


def test_exc_info_after_the_head_cuts_the_response_and_the_server_goes_on():
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/ok":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"fine"]
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"part one")
        try:
            raise ValueError("after the head")
        except ValueError:
            start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"never"]

    with served(app, validate=False) as srv:        # the validator rejects this on purpose; the server must cope
        raw = exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 200 OK") and raw.endswith(b"8\r\npart one\r\n")   # no last chunk
        assert httpx.get(f"http://{HOST}:{srv.port}/ok").text == "fine"


def test_write_callable_streams_before_the_app_returns():
    release = threading.Event()

    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"first ")
        assert release.wait(DEADLINE), "the client never saw the first write"
        write(b"second ")
        return [b"last"]

    with served(app) as srv, connect(srv.port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = b""
        while b"first " not in got:
            got += s.recv(4096)
        release.set()
        got += recv_until_eof(s)
    assert got.endswith(b"6\r\nfirst \r\n7\r\nsecond \r\n4\r\nlast\r\n0\r\n\r\n")


class Closing:
    """A response iterable that records whether close() was called."""

    closed = []

    def __init__(self, chunks, fail_at=None):
        self.chunks, self.fail_at = chunks, fail_at

    def __iter__(self):
        for i, chunk in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("fails mid-body")
            yield chunk

    def close(self):
        Closing.closed.append(self)


@pytest.mark.parametrize("fail_at", [None, 0, 2])
def test_close_is_always_called_and_a_failing_app_gets_500(fail_at):
    Closing.closed.clear()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing([b"a", b"b", b"c"], fail_at)

    with served(app) as srv:
        r = httpx.get(f"http://{HOST}:{srv.port}/") if fail_at != 2 else None
        if fail_at == 2:
            with pytest.raises(httpx.RemoteProtocolError):        # cut after two chunks
                httpx.get(f"http://{HOST}:{srv.port}/")
        assert len(Closing.closed) == 1
    if fail_at is None:
        assert (r.status_code, r.text) == (200, "abc")
    elif fail_at == 0:
        assert r.status_code == 500


def test_an_app_that_raises_gets_500_and_the_connection_goes_on():
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/boom":
            raise KeyError("boom")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with served(app) as srv, httpx.Client(base_url=f"http://{HOST}:{srv.port}") as client:
        assert client.get("/boom").status_code == 500
        assert client.get("/").text == "ok"


def test_a_client_that_leaves_mid_stream_stops_the_app_and_close_runs():
    produced = []
    closed = threading.Event()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def body():
            try:
                for i in range(100_000):
                    produced.append(i)
                    yield b"x" * 65536
            finally:
                closed.set()
        return body()

    with served(app, validate=False) as srv:
        with connect(srv.port) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(65536)
        assert closed.wait(DEADLINE), "the iterable was not closed after the client left"
    assert len(produced) < 1000


def test_a_client_that_does_not_read_pauses_the_app(monkeypatch):
    """Back-pressure: the app's thread waits once OUTPUT_HIGH_WATER bytes are unsent."""
    produced = []
    chunk = 64 * 1024
    paused = threading.Event()

    class Watched(response.Outbox):
        def put(self, part, size):
            if self._in_flight > self.high_water:
                paused.set()
            super().put(part, size)

    monkeypatch.setattr(request, "Outbox", Watched)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def body():
            for i in range(2000):               # 125 MiB if nothing held it back
                produced.append(i)
                yield b"y" * chunk
        return body()

    with served(app) as srv, connect(srv.port) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(1024)
        assert paused.wait(DEADLINE), "the app was never held back"
        held = len(produced)
        # What was produced: the outbox's bound, one chunk, and what the sockets' buffers took.
        assert held * chunk < response.OUTPUT_HIGH_WATER + 16 * 1024 * 1024, f"{held} chunks produced, none read"
        got = 1024
        while got < (held + 50) * chunk:        # reading lets it go on
            got += len(s.recv(1 << 20))
        assert len(produced) > held


@pytest.mark.parametrize("validate", [False, True])
def test_file_wrapper_is_sent_with_sendfile_unless_wrapped(tmp_path, monkeypatch, validate):
    """The validator wraps the iterable, which hides the file: then it is read in blocks on the app's thread."""
    path, data, calls = blob_and_sendfile_calls(tmp_path, monkeypatch, 3 * 1024 * 1024 + 17)

    def app(environ, start_response):
        f = open(path, "rb")
        f.seek(17)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 8192)

    with served(app, validate=validate) as srv:
        r = httpx.get(f"http://{HOST}:{srv.port}/")
    assert r.content == data[17:]
    if not validate:
        assert r.headers["content-length"] == str(len(data) - 17)
    assert bool(calls) is not validate, "sendfile is for the wrapper itself"


def test_head_http10_and_pipelining():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"hello ", environ["PATH_INFO"].encode()])

    with served(app) as srv:
        raw = exchange(srv.port, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"
                                 b"GET /c HTTP/1.0\r\n\r\n")
    first, rest = raw.split(b"0\r\n\r\n", 1)
    assert first.startswith(b"HTTP/1.1 200 OK") and first.endswith(b"6\r\nhello \r\n2\r\n/a\r\n")
    head, tail = rest.split(b"\r\n\r\n", 1)
    assert b"200 OK" in head and tail.startswith(b"HTTP/1.1 200 OK")       # HEAD: no body
    assert b"Connection: close" in tail and tail.endswith(b"\r\n\r\nhello /c")


def test_a_body_longer_than_its_content_length_is_cut_there():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return iter([b"abc", b"defgh"])

    with served(app, validate=False) as srv:
        raw = exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.count(b"HTTP/1.1 200 OK") == 2 and raw.count(b"abcde") == 2 and b"fgh" not in raw


def test_garbage_and_limits_are_answered():
    with served(echo_environ, max_head=1024, max_body=100) as srv:
        assert exchange(srv.port, b"NOT HTTP\r\n\r\n").startswith(b"HTTP/1.1 400")
        # The head is net.http's to check: a target alone over max_head is 414, a head over it 431.
        assert exchange(srv.port, b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 414")
        assert exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n").startswith(
            b"HTTP/1.1 431")
        assert exchange(srv.port, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400")      # no Host
        assert exchange(srv.port, b"GET / HTTP/1.2\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 505")
        assert exchange(srv.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n").startswith(
            b"HTTP/1.1 413")
        assert httpx.get(f"http://{HOST}:{srv.port}/").status_code == 200


def test_an_upgrade_request_is_answered_as_an_ordinary_one_and_the_connection_goes_on():
    """WSGI cannot switch protocols: the app answers, and the requests after it are parsed on."""
    with served(echo_environ) as srv:
        raw = exchange(srv.port, b"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                                 b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.count(b"HTTP/1.1 200 OK") == 2 and b"PATH_INFO=/b" in raw
