"""Clients and apps that try to break the WSGI server: smuggling, response splitting, bad app output."""
import pytest

from tests.serve.serveutil import exchange, served


def counting_app(seen):
    def app(environ, start_response):
        seen.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    return app


@pytest.mark.parametrize("raw", [
    # Content-Length and Transfer-Encoding together (RFC 9112 6.1: a smuggling vector).
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
    # Two different lengths.
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcdGET /smuggled HTTP/1.1\r\n\r\n",
    # A chunk size that is not hex.
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
    # A bare LF inside a header value.
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\nGET /smuggled HTTP/1.1\r\n\r\n",
])
def test_smuggling_vectors_get_400_and_no_hidden_request(raw):
    seen = []
    with served(counting_app(seen)) as srv:
        answer = exchange(srv.port, raw)
    assert b"HTTP/1.1 400" in answer
    assert ("GET", "/smuggled") not in seen


@pytest.mark.parametrize("status, headers", [
    ("200 OK", [("X-Split", "a\r\nSet-Cookie: evil=1")]),        # response splitting
    ("200 OK\r\nX-Evil: 1", []),
    ("200 OK", [("Transfer-Encoding", "chunked")]),             # hop-by-hop: the server's to send
    ("OK 200", []),
    ("200 Ça va", []),                                            # not latin-1? it is: sent as is
    ("200 OK", [("X-Name", "\u20ac")]),                           # not latin-1: cannot be sent
])
def test_bad_app_output_is_a_500_never_on_the_wire(status, headers):
    def app(environ, start_response):
        start_response(status, headers)
        return [b"body"]

    with served(app, validate=False) as srv:
        answer = exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    if status == "200 Ça va":
        assert answer.startswith("HTTP/1.1 200 Ça va\r\n".encode("latin-1"))
        return
    assert answer.startswith(b"HTTP/1.1 500 ")
    assert b"evil" not in answer.lower() and b"X-Name" not in answer


def test_str_body_is_a_500():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["not bytes"]

    with served(app, validate=False) as srv:
        assert exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 500")
