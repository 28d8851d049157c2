"""Slow clients cost a coroutine, not a thread: 500 half-sent request heads do not delay a normal request."""
import time

import httpx

from tests.serve.serveutil import DEADLINE, HOST, connect, served

SLOW = 500
#: A normal request must be answered this fast while the slow clients hang on (it takes ~1 ms alone).
ANSWER_WITHIN = 0.5


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def test_500_slow_heads_do_not_delay_a_normal_request():
    with served(hello, threads=2, header_timeout=2.0) as srv:
        slow = [connect(srv.port) for _ in range(SLOW)]
        try:
            for s in slow:                      # each sends its head a piece at a time and never ends it
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            for s in slow:
                s.sendall(b"a")
            with httpx.Client(base_url=f"http://{HOST}:{srv.port}", timeout=DEADLINE) as client:
                for _ in range(5):
                    start = time.monotonic()
                    assert client.get("/").text == "hello"
                    assert time.monotonic() - start < ANSWER_WITHIN
            # The head timeout cuts them: each sees the end of its connection.
            for s in slow[:20]:
                s.settimeout(2.0 + 3 * DEADLINE)
                assert s.recv(100) == b""
        finally:
            for s in slow:
                s.close()


def echo_body(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def test_a_stalled_body_gets_io_timeout_not_the_keep_alive_timeout():
    """A body that pauses past --keep-alive (but within io_timeout) is still read and answered."""
    with served(echo_body, keep_alive=0.2, io_timeout=3 * DEADLINE) as srv, connect(srv.port) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhe")
        time.sleep(1.0)                          # the stall itself: five keep-alive timeouts
        s.sendall(b"llo")
        s.settimeout(DEADLINE)
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"\r\nhello\r\n" in answer


def test_a_body_stalled_past_io_timeout_is_cut():
    with served(echo_body, keep_alive=3 * DEADLINE, io_timeout=0.3) as srv, connect(srv.port) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhe")
        s.settimeout(DEADLINE)
        start = time.monotonic()
        assert s.recv(100) == b""
        assert time.monotonic() - start < DEADLINE
