"""serve_http against RFC 9110/9112, read by h11 as a strict client.

Every response is parsed by a fresh ``h11.Connection`` told which request it
answers, so a body where none may be, a wrong length or a missing one shows
as an h11 error or as bytes left over for the next response (a desync).
"""
import socket

import h11
import pytest

from genloop.net import Response
from tests.net.netutil import connect, recv_until_eof
from tests.net.test_http import serving

pytestmark = pytest.mark.timeout(10)


def answer(request):
    path = request.path
    if path == "/304":
        return Response(304, b"hello")
    if path == "/204":
        return Response(204, b"x", (("Content-Length", "1"),))
    if path == "/100":
        return Response(100, b"")
    if path == "/stream":
        return Response(200, iter([b"ab", b"cd"]))
    if path == "/short":
        return Response(200, iter([b"ab"]), (("Content-Length", "5"),))
    if path == "/echo-upgrade" and request.headers.get("upgrade") == "echo":
        return Response.upgrade("echo", echo_lines)
    if path == "/close":
        return Response(200, b"closing", (("Connection", "close"),))
    return Response(200, f"{request.method} {path}".encode())


def suspending(request):
    """``answer`` from a generator app, which the server answers the other way (it may wait)."""
    return answer(request)
    yield


@pytest.fixture(params=[answer, suspending], ids=["plain", "generator"])
def app(request):
    return request.param


def echo_lines(stream):
    while line := (yield from stream.readline()):
        yield from stream.write_all(b"echo: " + line)


def request(method: str, target: str, *headers, version: str = "1.1") -> tuple[str, bytes]:
    fields = "".join(f"{h}\r\n" for h in headers)
    return method, f"{method} {target} HTTP/{version}\r\n{fields}\r\n".encode("latin-1")


def get(target: str, *headers) -> tuple[str, bytes]:
    return request("GET", target, "Host: t", *headers)


def exchange(port: int, requests) -> tuple[list, bytes]:
    """Pipeline ``requests`` ((method, raw bytes) pairs) on one connection, then read every
    response with h11 until the server closes; returns [(status, headers, body)] and what is left."""
    with connect(port) as sock:
        sock.sendall(b"".join(raw for _, raw in requests))
        sock.shutdown(socket.SHUT_WR)
        data = recv_until_eof(sock)
    answers = []
    for method, _ in requests:
        if not data:
            break
        client = h11.Connection(h11.CLIENT)
        client.send(h11.Request(method=method, target="/", headers=[("Host", "t")]))
        client.send(h11.EndOfMessage())
        client.receive_data(data)
        client.receive_data(b"")                    # the server closed: EOF after what it sent
        response, body = None, b""
        while True:
            event = client.next_event()
            if isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif not isinstance(event, h11.InformationalResponse):
                raise AssertionError(f"h11 saw {event!r} before the end of the response")
        answers.append((response.status_code, dict(response.headers), body))
        data = client.trailing_data[0]
    return answers, data


def test_304_204_carry_no_body_and_the_next_response_is_in_sync(app):
    with serving(app) as server:
        answers, left = exchange(server.port, [get("/304"), get("/204"), get("/after", "Connection: close")])
    assert [(s, b) for s, _, b in answers] == [(304, b""), (204, b""), (200, b"GET /after")]
    assert b"content-length" not in answers[0][1] and b"content-length" not in answers[1][1]
    assert left == b""


def test_a_1xx_from_the_app_is_not_a_final_answer_but_a_500(app):
    with serving(app) as server:
        answers, _ = exchange(server.port, [get("/100"), get("/next", "Connection: close")])
    assert [s for s, _, _ in answers] == [500, 200]


def test_streamed_bodies_are_framed_and_head_gets_no_body(app):
    with serving(app) as server:
        answers, left = exchange(server.port, [get("/stream"), request("HEAD", "/stream", "Host: t"),
                                               get("/x", "Connection: close")])
    assert [(s, b) for s, _, b in answers] == [(200, b"abcd"), (200, b""), (200, b"GET /x")]
    assert answers[1][1][b"transfer-encoding"] == b"chunked" and left == b""


def test_a_stream_shorter_than_its_content_length_closes_the_connection(app):
    with serving(app) as server:
        with connect(server.port) as sock:
            sock.sendall(get("/short")[1] + get("/never")[1])
            raw = recv_until_eof(sock)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"\r\n\r\nab")


@pytest.mark.parametrize("req, status", [
    (get("/" + "a" * 65_000), 414),
    (request("GET", "/", "X-A: 1"), 400),                                   # HTTP/1.1 without Host
    (request("GET", "/", "Host: a", "Host: b"), 400),
    (request("POST", "/", "Transfer-Encoding: chunked", version="1.0"), 400),
    (request("GET", "/", "Host: t", version="2.0"), 505),
    (request("CONNECT", "example.com:443", "Host: example.com:443"), 501),
    (request("GET", "*", "Host: t"), 400),
])
def test_requests_the_app_must_not_see_get_an_error_after_the_ones_before(app, req, status):
    with serving(app) as server:
        answers, left = exchange(server.port, [get("/first"), req, get("/dropped")])
    assert [s for s, _, _ in answers] == [200, status] and left == b""
    assert answers[1][1][b"connection"] == b"close"


def test_http_1_0_without_host_and_options_asterisk_reach_the_app(app):
    with serving(app) as server:
        answers, _ = exchange(server.port, [request("OPTIONS", "*", "Host: t"), request("GET", "/old", version="1.0")])
    assert [(s, b) for s, _, b in answers] == [(200, b"OPTIONS *"), (200, b"GET /old")]


def test_an_upgrade_the_app_ignores_keeps_the_connection_and_the_next_request(app):
    with serving(app) as server:
        answers, left = exchange(server.port, [get("/", "Upgrade: websocket", "Connection: Upgrade"),
                                               get("/next", "Connection: close")])
    assert [(s, b) for s, _, b in answers] == [(200, b"GET /"), (200, b"GET /next")] and left == b""


def test_response_upgrade_hands_the_stream_to_the_new_protocol(app):
    with serving(app) as server:
        with connect(server.port) as sock:
            sock.sendall(get("/echo-upgrade", "Upgrade: echo", "Connection: Upgrade")[1] + b"early\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            head, _, rest = head.partition(b"\r\n\r\n")
            sock.sendall(b"later\n")
            sock.shutdown(socket.SHUT_WR)
            rest += recv_until_eof(sock)
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n") and b"Upgrade: echo" in head
    assert rest == b"echo: early\necho: later\n"


def test_head_http_1_0_keep_alive_and_the_app_s_connection_close_are_framed_as_asked(app):
    with serving(app) as server:
        answers, left = exchange(server.port, [request("HEAD", "/", "Host: t"),
                                               request("GET", "/old", "Connection: keep-alive", version="1.0"),
                                               get("/close"), get("/dropped")])
    assert [(s, b) for s, _, b in answers] == [(200, b""), (200, b"GET /old"), (200, b"closing")] and left == b""
    assert answers[0][1][b"content-length"] == b"6"             # "HEAD /", not sent
    assert answers[1][1][b"connection"] == b"keep-alive"
    assert answers[2][1][b"connection"] == b"close"


def test_what_one_head_said_does_not_carry_over_to_the_next(app):
    # A chunked 1.1 request, then a 1.0 one (where Transfer-Encoding is an
    # error), then a 1.1 one without Host: each head is judged alone.
    chunked = ("POST", b"POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    with serving(app) as server:
        answers, left = exchange(server.port, [chunked, request("GET", "/old", "Connection: keep-alive", version="1.0"),
                                               request("GET", "/no-host", "Connection: close")])
    assert [(s, b) for s, _, b in answers] == [(200, b"POST /a"), (200, b"GET /old"), (400, b"")] and left == b""
