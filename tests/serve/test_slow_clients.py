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
