"""serve_http with real clients: http.client, curl and raw sockets."""
import http.client
import json
import shutil
import subprocess
import threading
import time
from functools import partial

import pytest
from httptools import HttpRequestParser

from genloop import kernel
from genloop.kernel import sleep
from genloop.net import Response, open_connection, serve_http
from genloop.net import http as net_http
from genloop.net.http import HttpService
from tests.net.netutil import DEADLINE, HOST, connect, recv_until_eof, server_thread

pytestmark = pytest.mark.timeout(10)


def describe(request):
    """Echo what the server parsed, as JSON."""
    if request.path == "/boom":
        raise RuntimeError("the app blew up")
    if request.path == "/slow":
        yield from sleep(0.05)
    body = json.dumps({
        "method": request.method, "path": request.path, "query": request.query,
        "params": request.params, "body": request.body.decode("latin-1"),
        "version": request.version, "keep_alive": request.keep_alive,
        "x": request.headers.get("x-thing"), "raw": [list(map(bytes.decode, h)) for h in request.headers],
    }).encode()
    return Response(200, body, (("Content-Type", "application/json"),))


def serving(app=describe, **limits):
    return server_thread(partial(serve_http, app, HOST, 0, **limits))


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes."""
    with connect(port) as sock:
        sock.sendall(data)
        return recv_until_eof(sock)


def responses(raw: bytes) -> list:
    """Split a byte stream of Content-Length responses into (status line, headers, body)."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        n = int(headers.get("content-length", 0))
        out.append((lines[0], headers, rest[:n]))
        raw = rest[n:]
    return out


def test_http_client_keep_alive_requests():
    with serving() as server:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=DEADLINE)
        seen = []
        for i in range(5):
            conn.request("GET", f"/items/{i}?a=1&b=two%20words&a=3", headers={"X-Thing": str(i)})
            r = conn.getresponse()
            assert r.status == 200 and r.getheader("Content-Type") == "application/json"
            seen.append(json.loads(r.read()))
            conn.request("POST", "/echo", body=b"payload %d" % i)
            r = conn.getresponse()
            assert json.loads(r.read())["body"] == f"payload {i}"
        conn.close()
    assert server.accepted == 1                               # one connection for all ten
    assert [s["x"] for s in seen] == ["0", "1", "2", "3", "4"]
    first = seen[0]
    assert first["path"] == "/items/0" and first["query"] == "a=1&b=two%20words&a=3"
    assert first["params"] == {"a": "3", "b": "two words"}
    assert first["version"] == "1.1" and first["keep_alive"] is True
    assert ["X-Thing", "0"] in first["raw"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_get_and_post():
    with serving() as server:
        url = f"http://{HOST}:{server.port}/curl%2Fpath?q=1"
        got = subprocess.run(["curl", "-sS", "--max-time", "5", url, url, "-d", "from curl"],
                             capture_output=True, check=True, timeout=DEADLINE).stdout
    first, second = got.split(b"}{")
    assert json.loads(first + b"}")["method"] == "POST"          # -d applies to both URLs
    assert json.loads(b"{" + second)["body"] == "from curl"
    assert json.loads(first + b"}")["path"] == "/curl/path"


def test_pipelined_requests_are_answered_in_order():
    with serving() as server:
        batch = b"".join(b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(20))
        raw = exchange(server.port, batch + b"GET /slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    got = responses(raw)
    assert [json.loads(body)["path"] for _, _, body in got] == [f"/{i}" for i in range(20)] + ["/slow"]
    assert got[-1][1]["connection"] == "close"


def test_chunked_request_body():
    with serving() as server:
        raw = exchange(server.port, b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                                    b"Connection: close\r\n\r\n"
                                    b"5\r\nhello\r\n1;ext=1\r\n,\r\n6\r\n world\r\n0\r\n\r\n")
    (status, _, body), = responses(raw)
    assert status == "HTTP/1.1 200 OK" and json.loads(body)["body"] == "hello, world"


def test_expect_100_continue_is_answered_before_the_body_is_sent():
    with serving() as server, connect(server.port) as sock:
        sock.sendall(b"PUT /big HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += sock.recv(1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"12345")
        (status, _, body), = responses(sock.recv(65536))
    assert status == "HTTP/1.1 200 OK" and json.loads(body)["body"] == "12345"


def test_expect_100_continue_with_a_body_too_large_gets_413_at_once():
    with serving(max_body=100) as server:
        raw = exchange(server.port, b"PUT /big HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n"
                                    b"Expect: 100-continue\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 413 Content Too Large\r\n") or \
        raw.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")


def test_head_sends_the_length_without_the_body():
    with serving() as server:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=DEADLINE)
        conn.request("HEAD", "/x")
        head = conn.getresponse()
        length = int(head.getheader("Content-Length"))
        assert head.read() == b""
        conn.request("GET", "/x")                     # the connection is still in sync
        body = conn.getresponse().read()
        conn.close()
    assert length > 0 and json.loads(body)["method"] == "GET"


def test_connection_close_and_http_1_0():
    with serving() as server:
        closed = exchange(server.port, b"GET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                                       b"GET /never HTTP/1.1\r\nHost: t\r\n\r\n")
        old = exchange(server.port, b"GET /old HTTP/1.0\r\n\r\n")
        with connect(server.port) as sock:
            sock.sendall(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            (_, headers, _), = responses(sock.recv(65536))
            sock.sendall(b"GET /b HTTP/1.0\r\n\r\n")
            (_, last, _), = responses(recv_until_eof(sock))
    assert [json.loads(b)["path"] for _, _, b in responses(closed)] == ["/c"]
    (_, h, body), = responses(old)
    assert h["connection"] == "close" and json.loads(body)["version"] == "1.0"
    assert headers["connection"] == "keep-alive" and last["connection"] == "close"


def test_header_block_too_large_gets_431_and_close():
    with serving(max_head=1024) as server:
        whole = exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
        with connect(server.port) as sock:                 # a head that never ends
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: ")
            try:
                for _ in range(100):
                    sock.sendall(b"b" * 100)
            except OSError:
                pass                                       # the server stopped reading
            unfinished = recv_until_eof(sock)
    for raw in (whole, unfinished):
        assert raw.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        assert b"Connection: close" in raw


def test_body_too_large_gets_413_and_close():
    with serving(max_body=1000) as server:
        declared = exchange(server.port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000)
        chunked = exchange(server.port, b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                           + b"400\r\n" + b"y" * 1024 + b"\r\n" + b"0\r\n\r\n")
    for raw in (declared, chunked):
        (status, headers, _), = responses(raw)
        assert status.startswith("HTTP/1.1 413 ") and headers["connection"] == "close"


def test_garbage_gets_400_and_close_after_earlier_requests_are_answered():
    with serving() as server:
        raw = exchange(server.port, b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\nthis is not http\r\n\r\n")
    ok, bad = responses(raw)
    assert json.loads(ok[2])["path"] == "/ok"
    assert bad[0] == "HTTP/1.1 400 Bad Request" and bad[1]["connection"] == "close"


def test_app_exception_gets_500_and_the_server_goes_on(caplog):
    with serving() as server:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=DEADLINE)
        conn.request("GET", "/boom")
        failed = conn.getresponse()
        failed.read()
        conn.request("GET", "/after")                  # the same connection goes on
        after = conn.getresponse()
        assert json.loads(after.read())["path"] == "/after"
        conn.close()
        fresh = responses(exchange(server.port, b"GET /fresh HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    assert failed.status == 500
    assert json.loads(fresh[0][2])["path"] == "/fresh"
    assert "the app blew up" in caplog.text


def test_idle_keep_alive_connection_is_closed_quietly():
    with serving(idle_timeout=0.3) as server, connect(server.port) as sock:
        sock.sendall(b"GET /once HTTP/1.1\r\nHost: t\r\n\r\n")
        first = sock.recv(65536)
        started = time.monotonic()
        rest = recv_until_eof(sock)
        idle = time.monotonic() - started
    assert first.startswith(b"HTTP/1.1 200 OK") and rest == b""
    assert 0.3 <= idle < 1.5


def test_slowloris_is_cut_off_while_a_normal_client_is_served():
    timeout = 0.3
    with serving(header_timeout=timeout) as server, connect(server.port) as slow:
        slow.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        started = time.monotonic()
        cut = threading.Event()

        def dribble():
            try:
                while not cut.is_set() and time.monotonic() - started < DEADLINE:
                    slow.sendall(b"X-Slow: 1\r\n")        # a header line every 20 ms, never done
                    cut.wait(0.02)
            except OSError:
                pass

        dribbler = threading.Thread(target=dribble)
        dribbler.start()
        t0 = time.monotonic()
        normal = exchange(server.port, b"GET /normal HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        normal_took = time.monotonic() - t0
        try:
            leftover = recv_until_eof(slow)
        except ConnectionResetError:
            leftover = b""
        lasted = time.monotonic() - started
        cut.set()
        dribbler.join(DEADLINE)
    assert json.loads(responses(normal)[0][2])["path"] == "/normal"
    assert normal_took < timeout
    assert leftover == b""
    assert timeout <= lasted < timeout + 1.0


def test_a_request_cut_inside_its_method_is_cut_at_the_header_timeout():
    """Only a method's first bytes (no target yet: no parser callback ran) is a request begun, not an idle client."""
    timeout = 0.3
    with serving(header_timeout=timeout, idle_timeout=30) as server, connect(server.port) as slow:
        slow.sendall(b"GE")
        started = time.monotonic()
        try:
            leftover = recv_until_eof(slow)
        except ConnectionResetError:
            leftover = b""
        lasted = time.monotonic() - started
    assert leftover == b""
    assert timeout <= lasted < timeout + 1.0


def test_answers_with_the_same_head_and_changing_bodies_each_carry_their_own():
    """The answer kept for a constant body is never the answer to another body."""
    small, large = b"one", b"x" * 5000
    bodies = [small, bytes(bytearray(small)), b"two", large, bytes(bytearray(large)), small]
    answers = iter(bodies)

    def app(request):
        return Response(200, next(answers), (("Content-Type", "text/plain"),))

    with serving(app) as server:
        raw = exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * (len(bodies) - 1) +
                       b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert [body for _, _, body in responses(raw)] == bodies


def test_a_constant_response_changed_between_answers_is_answered_as_it_is_now():
    """The bytes kept for a ``Response`` answered before are used only while its status, headers and body are the same."""
    constant = Response(200, b"same", (("Content-Type", "text/plain"),))
    changes = iter([lambda: None, lambda: setattr(constant, "status", 201),
                    lambda: setattr(constant, "headers", (("X-New", "1"),)),
                    lambda: setattr(constant, "body", b"other"), lambda: None])

    def app(request):
        next(changes)()
        return constant

    with serving(app) as server:
        raw = exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 4 +
                       b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    answers = responses(raw)
    assert [(line, headers.get("content-type"), headers.get("x-new"), body) for line, headers, body in answers] == [
        ("HTTP/1.1 200 OK", "text/plain", None, b"same"),
        ("HTTP/1.1 201 Created", "text/plain", None, b"same"),
        ("HTTP/1.1 201 Created", None, "1", b"same"),
        ("HTTP/1.1 201 Created", None, "1", b"other"),
        ("HTTP/1.1 201 Created", None, "1", b"other"),
    ]


def test_pipelined_answers_of_a_plain_app_past_high_water_each_go_once_in_order():
    """The answers queued past the high-water mark are sent, and the rest answered after, none twice."""
    def app(request):
        return Response(200, request.path.encode() * 300)

    with serving(app, high_water=1000) as server:
        raw = exchange(server.port, b"".join(b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(5)) +
                       b"GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    paths = ["/0", "/1", "/2", "/3", "/4", "/last"]
    assert [body for _, _, body in responses(raw)] == [p.encode() * 300 for p in paths]


def test_a_closing_answer_past_high_water_ends_the_connection_before_the_next_request():
    def app(request):
        return Response(200, request.path.encode() * 1000)

    with serving(app, high_water=1000) as server:
        raw = exchange(server.port, b"GET /0 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                                    b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert [body for _, _, body in responses(raw)] == [b"/0" * 1000]


def test_an_app_returning_no_response_is_asked_once_and_answered_with_500(caplog):
    calls = []

    def app(request):
        calls.append(request.path)

    with serving(app) as server:
        raw = exchange(server.port, b"GET /none HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 500 ")
    assert calls == ["/none"]


def test_an_answer_made_once_the_service_is_closing_says_close():
    """A request finished after a stop began (it was in flight then) is answered, and the connection ends."""
    service = HttpService(lambda request: Response(200, b"ok"), time.monotonic)
    conn = service.Connection(service.max_head, service.max_body, None)
    service.closing = True
    service._parse(conn, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert service._answer(None, conn) is False
    assert b"".join(conn.out) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def test_many_concurrent_keep_alive_clients_from_threads():
    clients, rounds = 40, 10
    failures = []

    def client(i):
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=DEADLINE)
            for r in range(rounds):
                conn.request("GET", f"/{i}/{r}")
                assert json.loads(conn.getresponse().read())["path"] == f"/{i}/{r}"
            conn.close()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            failures.append(e)

    with serving() as server:
        port = server.port
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEADLINE)
    assert failures == []
    assert server.accepted == clients


def test_response_headers_status_and_streamed_body():
    def app(request):
        if request.path == "/stream":
            return Response(200, (part for part in (b"ab", b"", b"cde")), [(b"X-Kind", b"stream")])
        if request.path == "/empty":
            return Response(204, b"ignored")
        return Response(599, b"odd", [("Connection", "close")])
        yield

    with serving(app) as server:
        streamed = exchange(server.port, b"GET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        empty = exchange(server.port, b"GET /empty HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        odd = exchange(server.port, b"GET /odd HTTP/1.1\r\nHost: t\r\n\r\n")
        old = exchange(server.port, b"GET /stream HTTP/1.0\r\n\r\n")
    assert b"Transfer-Encoding: chunked\r\n" in streamed and b"X-Kind: stream\r\n" in streamed
    assert streamed.endswith(b"\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n")
    assert empty.startswith(b"HTTP/1.1 204 No Content\r\n") and b"Content-Length" not in empty
    assert empty.endswith(b"\r\n\r\n")
    assert odd.startswith(b"HTTP/1.1 599 Unknown\r\n") and odd.endswith(b"\r\n\r\nodd")
    assert old.endswith(b"\r\n\r\nabcde") and b"Connection: close" in old


def test_a_plain_function_app_works_too():
    def plain(request):
        return Response(200, request.method.encode())

    with serving(plain) as server:
        (status, _, body), = responses(exchange(server.port, b"DELETE / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    assert status == "HTTP/1.1 200 OK" and body == b"DELETE"


def test_headers_lookup_is_case_insensitive():
    from genloop.net import Headers
    headers = Headers([(b"Content-Type", b"text/plain"), (b"X-A", b"1"), (b"x-a", b"2")])
    assert headers["content-type"] == "text/plain" and headers.get("X-A") == "1"
    assert headers.getall("x-a") == ["1", "2"] and "CONTENT-TYPE" in headers
    assert headers[0] == (b"Content-Type", b"text/plain") and headers.get("nope") is None
    with pytest.raises(KeyError):
        headers["nope"]


def test_server_close_ends_idle_keep_alive_connections():
    def main():
        server = yield from serve_http(describe, HOST, 0)
        client = yield from open_connection(HOST, server.port)
        yield from client.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        head = yield from client.readuntil(b"\r\n\r\n")
        server.close()
        rest = yield from client.read()              # the body, then EOF: not left open
        client.close()
        yield from server.shutdown(0)
        return head, rest

    head, rest = kernel.run(main)
    assert head.startswith(b"HTTP/1.1 200 OK") and json.loads(rest)["path"] == "/"


def test_a_header_with_a_line_break_is_refused_with_500():
    def splitter(request):
        return Response(200, b"x", [("X-Evil", "a\r\nSet-Cookie: stolen=1")])

    with serving(splitter) as server:
        (status, headers, _), = responses(exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
    assert status == "HTTP/1.1 500 Internal Server Error" and "set-cookie" not in headers


def read_answer(sock) -> bytes:
    """One Content-Length answer from ``sock``."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        raw += sock.recv(65536)
    head, _, body = raw.partition(b"\r\n\r\n")
    n = int(dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])[b"content-length"])
    while len(body) < n:
        body += sock.recv(65536)
    assert len(body) == n
    return head + b"\r\n\r\n" + body


def test_idle_keep_alive_connections_share_parsers(monkeypatch):
    """An idle connection lends its parser back: 20 connections used in turn make at most two, and none
    mixes another's request up with its own, even one that waits half-way through a head or a body."""
    made = []

    def counted(protocol):
        parser = HttpRequestParser(protocol)
        made.append(parser)
        return parser

    monkeypatch.setattr(net_http, "HttpRequestParser", counted)

    def app(request):
        return Response(200, b"%s %s %s" % (request.method.encode(), request.target, request.body))

    with serving(app) as server:
        socks = []
        try:
            for i in range(20):
                sock = connect(server.port)
                socks.append(sock)
                sock.sendall(b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
                assert read_answer(sock).endswith(b"GET /%d " % i)
            assert len(made) <= 2
            first, second, third = socks[:3]
            first.sendall(b"POST /first HTTP/1.1\r\nHo")                      # waits inside its head
            second.sendall(b"POST /second HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nabc")   # inside its body
            third.sendall(b"GET /third HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_answer(third).endswith(b"GET /third ")
            first.sendall(b"st: t\r\nContent-Length: 2\r\n\r\nhi")
            second.sendall(b"def")
            assert read_answer(first).endswith(b"POST /first hi")
            assert read_answer(second).endswith(b"POST /second abcdef")
            for i, sock in enumerate(socks):
                sock.sendall(b"GET /again/%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
            for i, sock in enumerate(socks):
                assert read_answer(sock).endswith(b"GET /again/%d " % i)
        finally:
            for sock in socks:
                sock.close()


def test_connections_that_leave_while_idle_give_their_parser_back(monkeypatch):
    """A keep-alive connection the client closes between requests leaves its parser to the next connection."""
    made = []

    def counted(protocol):
        made.append(protocol)
        return HttpRequestParser(protocol)

    monkeypatch.setattr(net_http, "HttpRequestParser", counted)
    with serving(lambda request: Response(200, request.target)) as server:
        for i in range(10):
            with connect(server.port) as sock:
                sock.sendall(b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
                assert read_answer(sock).endswith(b"/%d" % i)
        with connect(server.port) as sock:          # the last close is seen before this one is served
            sock.sendall(b"GET /last HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_answer(sock).endswith(b"/last")
    assert len(made) <= 2
