"""``wsgi.input`` streams: the app runs once the head is in and reads the body as it arrives."""
import hashlib
import io
import os
import socket
import threading
import time

import httpx
import pytest

from genloop.kernel import Event
from genloop.net.http import PARSE_SLICE
from genloop.net.wsgi import body as body_module
from genloop.net.wsgi import server
from tests.net.netutil import rss
from tests.serve.serveutil import DEADLINE, HOST, connect, exchange, recv_until_eof, served

HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"


def test_the_app_reads_the_first_half_while_the_client_holds_the_second():
    first_read = threading.Event()

    def app(environ, start_response):
        body = environ["wsgi.input"]
        half = body.read(5)
        first_read.set()                        # the client sends the rest only now
        rest = body.read(5)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [half + b"|" + rest]

    with served(app) as srv, connect(srv.port) as s:
        s.sendall(HEAD + b"Content-Length: 10\r\n\r\nhello")
        assert first_read.wait(DEADLINE), "the app did not get the first half before the whole body"
        s.sendall(b"world")
        answer = recv_until_eof(s)
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"\r\nhello|world\r\n" in answer


def read_all(environ, start_response):
    """Reads wsgi.input to its end (read() with no size: past the validator, which forbids it)."""
    data = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%s %d" % (environ["PATH_INFO"].encode(), len(data))]


@pytest.mark.parametrize("framing", [b"Content-Length: 5\r\n\r\nhello",
                                     b"Transfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"])
def test_the_body_ends_where_its_framing_says_not_in_the_next_request(framing):
    with served(read_all, validate=False) as srv:
        raw = exchange(srv.port, b"POST /a HTTP/1.1\r\nHost: x\r\n" + framing + b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.count(b"HTTP/1.1 200 OK") == 2 and b"/a 5" in raw and b"/b 0" in raw


def test_a_slow_body_holds_one_pool_thread_and_the_others_serve_on():
    got_first = threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/upload":
            stream = environ["wsgi.input"]
            data = stream.read(1)
            got_first.set()
            data += stream.read(2)              # blocks its thread while the client holds the rest
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [data]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"quick"]

    with served(app, threads=2) as srv, connect(srv.port) as slow:
        slow.sendall(HEAD.replace(b"/", b"/upload", 1) + b"Content-Length: 3\r\n\r\na")
        assert got_first.wait(DEADLINE)
        with httpx.Client(base_url=f"http://{HOST}:{srv.port}", timeout=DEADLINE) as client:
            for _ in range(5):
                assert client.get("/").text == "quick"
        slow.sendall(b"b")                          # a byte at a time
        slow.sendall(b"c")
        assert recv_until_eof(slow).endswith(b"\r\nabc\r\n0\r\n\r\n")


def failing_read(box, first_read):
    """An app that reads 1 byte, reports it, then records what its next read raises."""
    def app(environ, start_response):
        stream = environ["wsgi.input"]
        stream.read(1)
        first_read.set()
        try:
            stream.read(100)
        except OSError as e:
            box["error"] = e
        box["done"] = True
        start_response("500 Body Failed", [("Content-Type", "text/plain")])
        return [b"no body"]
    return app


def wait_for(box, key):
    deadline = time.monotonic() + DEADLINE
    while key not in box:
        assert time.monotonic() < deadline, f"no {key} within {DEADLINE} s"
        time.sleep(0.01)


def test_a_stalled_body_past_io_timeout_makes_the_read_raise_and_cuts_the_connection():
    box, first_read = {}, threading.Event()
    with served(failing_read(box, first_read), keep_alive=3 * DEADLINE, io_timeout=0.3) as srv, \
            connect(srv.port) as s:
        s.sendall(HEAD + b"Content-Length: 100\r\n\r\nx")
        assert first_read.wait(DEADLINE)
        start = time.monotonic()
        assert s.recv(100) == b""                   # cut, not answered
        assert time.monotonic() - start < DEADLINE
        wait_for(box, "done")
    assert isinstance(box.get("error"), TimeoutError)


def test_a_client_that_leaves_mid_body_makes_the_read_raise():
    box, first_read = {}, threading.Event()
    with served(failing_read(box, first_read)) as srv:
        with connect(srv.port) as s:
            s.sendall(HEAD + b"Content-Length: 100\r\n\r\nx")
            assert first_read.wait(DEADLINE)
        wait_for(box, "done")
        assert httpx.get(f"http://{HOST}:{srv.port}/", timeout=DEADLINE).status_code == 500   # the server goes on
    assert isinstance(box.get("error"), ConnectionResetError)


@pytest.mark.parametrize("bad", [b"zz\r\n", b"200\r\n" + b"y" * 0x200 + b"\r\n"])
def test_bad_framing_or_an_oversize_chunked_body_mid_body_makes_the_read_raise_and_closes(bad):
    """max_body 256: the second case's chunk takes the body past it."""
    box, first_read = {}, threading.Event()
    with served(failing_read(box, first_read), max_body=256) as srv, connect(srv.port) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n")
        assert first_read.wait(DEADLINE)
        s.sendall(bad)
        answer = recv_until_eof(s)
        wait_for(box, "done")
    assert isinstance(box.get("error"), ConnectionAbortedError)
    assert answer.startswith(b"HTTP/1.1 500 Body Failed") and b"Connection: close" in answer


def test_a_content_length_over_max_body_is_413_and_the_app_never_runs():
    calls = []

    def app(environ, start_response):
        calls.append(1)
        start_response("200 OK", [])
        return []

    with served(app, max_body=100) as srv:
        raw = exchange(srv.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 413") and not calls


def ignore_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["PATH_INFO"].encode()]


def test_an_app_that_does_not_read_a_small_body_keeps_the_connection():
    """Answered before its body arrives: the body is read and dropped, then the next request is served."""
    with served(ignore_body, validate=False) as srv, connect(srv.port) as s:
        s.sendall(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n")
        got = b""
        while not got.endswith(b"/a"):
            got += s.recv(4096)
        assert b"Connection: close" not in got
        s.sendall(b"z" * 3000 + b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        rest = recv_until_eof(s)
    assert rest.startswith(b"HTTP/1.1 200 OK") and rest.endswith(b"/b")


def test_an_app_that_does_not_read_a_large_body_closes_the_connection():
    """More than MAX_DRAIN unread: the response says close and our side ends at once."""
    with served(ignore_body, validate=False) as srv, connect(srv.port) as s:
        s.sendall(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (server.MAX_DRAIN + 1000) + b"z" * 100)
        answer = recv_until_eof(s)                 # the server's half-close ends it, not a timeout
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in answer and answer.endswith(b"/a")


def test_100_continue_goes_out_when_the_app_first_reads_and_not_if_it_never_does():
    def app(environ, start_response):
        data = environ["wsgi.input"].read(5) if environ["PATH_INFO"] == "/read" else b"unread"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [data]

    expect = b"Host: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    with served(app) as srv:
        with connect(srv.port) as s:
            s.sendall(b"POST /read HTTP/1.1\r\n" + expect)
            got = b""
            while b"\r\n\r\n" not in got:
                got += s.recv(4096)
            assert got == b"HTTP/1.1 100 Continue\r\n\r\n"
            s.sendall(b"hello")
            got = b""
            while not got.endswith(b"\r\n0\r\n\r\n"):
                got += s.recv(4096)
            assert got.startswith(b"HTTP/1.1 200 OK") and b"\r\nhello\r\n" in got
        # The client still waits for 100 Continue: its body may never come, so the connection closes.
        with connect(srv.port) as s:
            s.sendall(b"POST /noread HTTP/1.1\r\n" + expect)
            answer = recv_until_eof(s)
        assert answer.startswith(b"HTTP/1.1 200 OK") and b"100 Continue" not in answer
        assert b"Connection: close" in answer and b"\r\nunread\r\n" in answer


class _Watched(Event):
    """The pipe's ``room``: records that the connection stopped reading to wait for the app."""
    paused = threading.Event()

    def wait(self):
        _Watched.paused.set()
        return super().wait()


def test_the_connection_stops_reading_while_the_app_does_not(monkeypatch):
    _Watched.paused.clear()
    monkeypatch.setattr(body_module, "Event", _Watched)
    pipes, release = [], threading.Event()
    size = 32 * 1024 * 1024

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        n = len(stream.read(1))
        pipes.append(stream.raw)
        assert release.wait(DEADLINE)
        while chunk := stream.read(1 << 16):
            n += len(chunk)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d" % n]

    with served(app, validate=False) as srv, connect(srv.port) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sender = threading.Thread(target=lambda: s.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % size + b"b" * size))
        sender.start()
        try:
            assert _Watched.paused.wait(DEADLINE), "the connection never waited for the app"
            deadline = time.monotonic() + DEADLINE
            while not pipes:                            # the app's first read is done
                assert time.monotonic() < deadline
                time.sleep(0.01)
            # It holds the buffer's bound, one more parse slice and the app's first buffered read: the client cannot finish.
            assert pipes[0].received <= body_module.BODY_BUFFER + PARSE_SLICE + io.DEFAULT_BUFFER_SIZE
            assert sender.is_alive()
        finally:
            release.set()
            sender.join(3 * DEADLINE)
        assert recv_until_eof(s).endswith(b"\r\n\r\n%d" % size)


#: RSS the server may add while a 100 MB upload passes through a slow app.
RSS_GROWTH = 16 * 1024 * 1024


def test_a_100_mb_upload_read_slowly_keeps_memory_flat():
    size, block = 100 * 1024 * 1024, 1 << 20
    peak, digest = [0], hashlib.sha256()
    chunk = os.urandom(block)

    def app(environ, start_response):
        stream, n = environ["wsgi.input"], 0
        while data := stream.read(4096):        # small reads: slower than the client sends
            n += len(data)
            digest.update(data)
            if n % block == 0:
                peak[0] = max(peak[0], rss(os.getpid()))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d" % n]

    with served(app, validate=False) as srv, connect(srv.port, timeout=3 * DEADLINE) as s:
        before = rss(os.getpid())
        s.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % size)
        view = memoryview(chunk)
        for _ in range(size // block):
            s.sendall(view)
        answer = recv_until_eof(s)
    expected = hashlib.sha256()
    for _ in range(size // block):
        expected.update(chunk)
    assert answer.endswith(b"\r\n\r\n%d" % size) and digest.hexdigest() == expected.hexdigest()
    assert peak[0] - before < RSS_GROWTH, f"RSS grew by {(peak[0] - before) >> 20} MiB"


def test_spool_chunked_reads_a_chunked_body_whole_first_and_gives_its_length():
    """For apps that read CONTENT_LENGTH bytes only (Django): the server asks for 100 Continue itself."""
    def app(environ, start_response):
        data = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%s %s" % (environ["CONTENT_LENGTH"].encode(), data)]

    with served(app, spool_chunked=True) as srv, connect(srv.port) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n"
                  b"Connection: close\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        assert got == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n")
        answer = recv_until_eof(s)
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"\r\n5 hello\r\n" in answer


def test_an_app_stuck_before_reading_a_large_body_still_gets_its_503():
    """The connection waits for the app (its buffer full), and app_timeout runs meanwhile."""
    release = threading.Event()

    def app(environ, start_response):
        release.wait(3 * DEADLINE)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"late"]

    with served(app, app_timeout=0.3) as srv, connect(srv.port) as s:
        try:
            s.sendall(HEAD + b"Content-Length: 1000000\r\n\r\n" + b"q" * 300_000)
            start = time.monotonic()
            answer = b""
            try:
                while chunk := s.recv(65536):
                    answer += chunk
            except ConnectionResetError:                # closed with the body unread: the reset follows the 503
                pass
        finally:
            release.set()                               # its thread must end before the server can
    assert answer.startswith(b"HTTP/1.1 503") and time.monotonic() - start < DEADLINE
