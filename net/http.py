"""HTTP/1.1 server on ``serve_tcp``: keep-alive, pipelining, limits and timeouts.

``app(request)`` is a generator function (an ``async def`` or a plain function
works too) given a ``Request`` and returning a ``Response``. Each connection is one task that
reads the socket directly in large chunks and feeds ``httptools`` from it;
every request completed by one read is answered, in order, and the answers
go out in one ``send``, so a pipelining client costs one system call per
batch, not per request.

Limits answer instead of crashing: a request head over ``max_head`` bytes
gets 431, a body over ``max_body`` 413, a malformed request 400, and each of
those closes the connection. An exception in ``app`` is logged and answered
with 500; the request was read whole, so the connection goes on.

Timeouts cost no timer per request: a kernel timer armed and removed around
every wait costs ~1.8 us with a thousand others pending (SortedList), a
sixth of a whole keep-alive request. Instead a waiting connection copies a
deadline (``idle_timeout`` between requests, while a body stalls or while a
slow reader holds up a send; ``header_timeout`` from the first read of an
unfinished request head), and one sweeper task per server cancels the
connections whose deadline has passed, every quarter of the shortest
timeout (at most ``MAX_SWEEP``). A connection is cut between its timeout
and two sweeps after it.
"""
import logging
import socket as _socket
import threading
import types
from http import HTTPStatus
from types import CoroutineType, GeneratorType
from urllib.parse import parse_qsl, unquote

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from genloop.kernel import current_kernel, current_task, sleep

from .tcp import DEFAULT_BACKLOG, STOP_GRACE, serve_tcp
from .tls import HANDSHAKE_TIMEOUT

log = logging.getLogger("genloop.net.http")

#: Bytes asked per recv: one call drains a loopback socket's buffer of many
#: pipelined requests (asyncio and uvloop read 256 KiB; 64 KiB is the Stream's).
READ_SIZE = 64 * 1024
#: Largest request head (request line + headers): Node.js's default, h11's too.
MAX_HEAD = 16 * 1024
#: Largest request body: nginx's ``client_max_body_size`` default.
MAX_BODY = 1024 * 1024
#: Idle keep-alive connections are closed after this many seconds (nginx: 75, Node: 5).
IDLE_TIMEOUT = 15.0
#: A request head must arrive whole within this many seconds of its first
#: byte (nginx's ``client_header_timeout`` is 60; slowloris needs a bound).
HEADER_TIMEOUT = 10.0
#: Longest pause between two sweeps for expired deadlines.
MAX_SWEEP = 1.0
#: After answering with an error, read and drop what the client still sends for
#: at most this long before closing, so it sees the answer rather than a reset
#: (nginx's ``lingering_close``, whose ``lingering_timeout`` is 5 s).
LINGER_TIMEOUT = 2.0

_INF = float("inf")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Headers(list):
    """The request's header fields: the raw ``(name, value)`` byte pairs, in order.

    Being the raw list itself costs nothing per request; lookups by name are
    case-insensitive, return ``str`` (latin-1, as RFC 9110 says) and scan the
    list, which is short.
    """

    __slots__ = ()

    def get(self, name: str, default=None):
        """The first value of ``name``, or ``default``."""
        key = name.lower().encode("latin-1")
        for n, v in self:
            if n.lower() == key:
                return v.decode("latin-1")
        return default

    def getall(self, name: str) -> list:
        """Every value of ``name``, in order."""
        key = name.lower().encode("latin-1")
        return [v.decode("latin-1") for n, v in self if n.lower() == key]

    def __getitem__(self, key):
        if isinstance(key, str):
            value = self.get(key)
            if value is None:
                raise KeyError(key)
            return value
        return list.__getitem__(self, key)

    def __contains__(self, name):
        if isinstance(name, str):
            return self.get(name) is not None
        return list.__contains__(self, name)


class Request:
    """One parsed request: ``method``, ``path`` (percent-decoded), ``query`` (raw),
    ``params`` (parsed query, last value wins), ``headers``, ``body``, ``version``,
    ``keep_alive`` and ``target`` (the raw request-target bytes)."""

    __slots__ = ("method", "target", "headers", "body", "version", "keep_alive",
                 "_path", "_query", "_params")

    def __init__(self, method, target, headers, body, version, keep_alive):
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.version = version
        self.keep_alive = keep_alive

    def __repr__(self):
        return f"<Request {self.method} {self.target.decode('latin-1')} HTTP/{self.version}>"

    def _split(self):
        target = self.target
        if not target.startswith(b"/"):        # absolute-form, as sent to proxies
            target = target.partition(b"://")[2]
            target = target[target.find(b"/"):] if b"/" in target else b"/"
        path, _, query = target.partition(b"?")
        path = path.decode("latin-1")
        self._path = unquote(path) if "%" in path else path
        self._query = query.decode("latin-1")

    # The parts below are computed on first use (an unset slot raises
    # AttributeError): most handlers never look at some of them.
    @property
    def path(self) -> str:
        try:
            return self._path
        except AttributeError:
            self._split()
            return self._path

    @property
    def query(self) -> str:
        try:
            return self._query
        except AttributeError:
            self._split()
            return self._query

    @property
    def params(self) -> dict:
        try:
            return self._params
        except AttributeError:
            self._params = dict(parse_qsl(self.query, keep_blank_values=True))
            return self._params


class Response:
    """What ``app`` returns: a status, a body and extra headers.

    A bytes-like ``body`` is sent with Content-Length; any other iterable of
    bytes chunks is sent with chunked transfer coding (HTTP/1.0 clients get it
    raw and the connection closes after it). ``headers`` is a sequence of
    ``(name, value)`` pairs (str or bytes); a tuple is encoded once and
    cached, so keep module-level header tuples constant.
    """

    __slots__ = ("status", "body", "headers")

    def __init__(self, status: int = 200, body=b"", headers=()):
        self.status = status
        self.body = body
        self.headers = headers

    def __repr__(self):
        return f"<Response {self.status}>"


def _status_line(status: int) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    return f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")


def _field(x) -> bytes:
    return x if isinstance(x, bytes) else str(x).encode("latin-1")


def _make_head(status: int, headers) -> tuple:
    """``(headers, prefix, closes, bodyless)``: the status line and header fields as
    bytes, whether they say ``Connection: close``, and whether the status has no body."""
    fields = [_STATUS_LINES.get(status) or _status_line(status)]
    closes = False
    for name, value in headers:
        name, value = _field(name), _field(value)
        if b"\n" in name + value or b"\r" in name + value:
            raise ValueError(f"response header {name!r} holds a line break (response splitting)")
        if name.lower() == b"connection" and value.lower() == b"close":
            closes = True
        else:
            fields.append(b"%s: %s\r\n" % (name, value))
    return headers, b"".join(fields), closes, status < 200 or status == 204


_STATUS_LINES = {s.value: _status_line(s.value) for s in HTTPStatus}
_BARE = {s.value: _make_head(s.value, ()) for s in HTTPStatus}
#: Encoded heads of header tuples, keyed by (status, id(tuple)); the entry
#: holds the tuple, so its id cannot be reused while cached. An app returning
#: module-level constants encodes them once.
_HEADS = {}
_MAX_HEADS = 256
#: The last (status, headers, entry) looked up: most apps answer the same way
#: every time, and this check is a third of the encoding's cost cheaper.
_last = (None, None, None)


def _head(status: int, headers) -> tuple:
    global _last
    last = _last                     # one read: other threads may replace it meanwhile
    if last[1] is headers and last[0] == status:
        return last[2]
    if not headers:
        entry = _BARE.get(status) or _make_head(status, ())
    elif type(headers) is not tuple:
        return _make_head(status, headers)
    else:
        entry = _HEADS.get((status, id(headers)))
        if entry is None or entry[0] is not headers:
            if len(_HEADS) >= _MAX_HEADS:
                _HEADS.clear()
            entry = _HEADS[status, id(headers)] = _make_head(status, headers)
    _last = (status, headers, entry)
    return entry


def _encode(resp, head_only: bool, keep_alive: bool, version: str):
    """``resp`` as bytes, and whether the connection may stay open after it."""
    _, prefix, closes, bodyless = _head(resp.status, resp.headers)
    body = resp.body
    if type(body) is bytes and keep_alive and not closes and not head_only and not bodyless \
            and version == "1.1":
        return b"%sContent-Length: %d\r\n\r\n%s" % (prefix, len(body), body), True
    keep_alive = keep_alive and not closes
    if bodyless:
        framing, body = b"", b""
    elif isinstance(body, (bytes, bytearray, memoryview)):
        framing = b"Content-Length: %d\r\n" % len(body)
    elif version == "1.0":                      # no chunked coding: the close ends the body
        keep_alive = False
        framing, body = b"", b"".join(body)
    else:
        framing = b"Transfer-Encoding: chunked\r\n"
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in body if c) + b"0\r\n\r\n"
    if not keep_alive:
        connection = b"Connection: close\r\n"
    elif version == "1.0":
        connection = b"Connection: keep-alive\r\n"
    else:
        connection = b""
    return b"%s%s%s\r\n%s" % (prefix, framing, connection, b"" if head_only else body), keep_alive


def _error(status: int) -> bytes:
    return _encode(Response(status), False, False, "1.1")[0]


class _Reject(Exception):
    """Raised from a parser callback to stop parsing and answer ``status``."""

    def __init__(self, status):
        self.status = status


_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}


class _Connection:
    """The parser's callbacks and one connection's state between reads.

    Completed requests pile up in ``ready``; the read loop answers them after
    each ``feed_data``. Kept small: these callbacks run for every request.
    ``deadline`` is how long the connection may keep waiting (infinite while
    it is busy); the sweeper reads it.
    """

    __slots__ = ("parser", "max_head", "max_body", "ready", "in_message", "in_head", "head_size",
                 "head_read", "head_deadline", "deadline", "task", "target", "headers", "body",
                 "body_size", "expect", "pending_continue", "connection_field")

    def __init__(self, max_head, max_body):
        self.parser = HttpRequestParser(self)
        self.max_head = max_head
        self.max_body = max_body
        self.ready = []
        self.in_message = self.in_head = self.pending_continue = False
        self.head_size = self.head_read = 0
        self.head_deadline = 0.0
        self.deadline = _INF
        self.task = None

    def on_message_begin(self):
        self.in_message = self.in_head = True
        self.target = b""
        self.headers = Headers()
        self.body = None
        self.body_size = 0
        self.expect = self.connection_field = False

    def on_url(self, part):
        self.target += part
        self.head_size += len(part)

    def on_header(self, name, value):
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.max_head:
            raise _Reject(431)
        n = len(name)
        if n == 10:
            self.connection_field = self.connection_field or name.lower() == b"connection"
        elif n == 14 and self.max_body is not None and name.lower() == b"content-length":
            if int(value) > self.max_body:
                raise _Reject(413)
        elif n == 6 and name.lower() == b"expect" and value.lower() == b"100-continue":
            self.expect = True
        self.headers.append((name, value))

    def on_headers_complete(self):
        self.in_head = False
        self.head_size = self.head_read = 0
        self.head_deadline = 0.0
        if self.expect and self.parser.get_http_version() == "1.1":
            self.pending_continue = True

    def on_body(self, part):
        self.body_size += len(part)
        if self.max_body is not None and self.body_size > self.max_body:
            raise _Reject(413)
        if self.body is None:
            self.body = [part]
        else:
            self.body.append(part)

    def on_message_complete(self):
        parser = self.parser
        method = parser.get_method()
        keep_alive = parser.should_keep_alive()
        # Without a Connection field, keep-alive is what the version implies
        # (1.1: yes, 1.0: no), which spares get_http_version (0.4 us) for 1.1.
        version = "1.1" if keep_alive and not self.connection_field else parser.get_http_version()
        self.in_message = self.pending_continue = False
        self.ready.append(Request(
            _METHODS.get(method) or method.decode("latin-1"), self.target, self.headers,
            b"".join(self.body) if self.body else b"", version, keep_alive))


_INTERNAL_ERROR = Response(500)


class HttpService:
    """An app, its limits and its live connections; ``handle`` is the stream handler.

    Deadlines come from a coarse clock the sweeper advances: a waiting
    connection copies ``idle_deadline`` (or ``head_deadline`` once, when a
    request head stays unfinished), so waiting costs no clock read and no
    timer. Both are one sweep later than exact, so a connection is not cut
    early (while the sweeper keeps its pace) and at most two sweeps late. Once ``closing`` (the server
    was closed), responses say ``Connection: close`` and connections idle
    between requests are cancelled.
    """

    def __init__(self, app, clock, *, max_head=MAX_HEAD, max_body=MAX_BODY,
                 idle_timeout=IDLE_TIMEOUT, header_timeout=HEADER_TIMEOUT):
        self.app = app
        self.clock = clock
        self.max_head = max_head
        self.max_body = max_body
        self.idle_timeout = idle_timeout
        self.header_timeout = header_timeout
        self.sweep_every = min(MAX_SWEEP, idle_timeout / 4, header_timeout / 4)
        self.closing = False
        self._live = set()
        self._lock = threading.Lock()   # handlers may run on several threads
        self._advance(clock())

    def _advance(self, now):
        self.idle_deadline = now + self.idle_timeout + self.sweep_every
        self.head_deadline = now + self.header_timeout + self.sweep_every

    def _select(self, pick):
        with self._lock:
            return [c.task for c in self._live if pick(c)]

    def sweep(self):
        """Cancel every connection whose deadline has passed, until the server closes."""
        try:
            while True:
                yield from sleep(self.sweep_every)
                now = self.clock()
                self._advance(now)
                for task in self._select(lambda c: c.deadline < now):
                    task.cancel()
        finally:
            self.closing = True
            for task in self._select(lambda c: not c.in_message and c.deadline != _INF):
                task.cancel()

    def handle(self, stream):
        """Serve one connection until it closes, errs or times out."""
        conn = _Connection(self.max_head, self.max_body)
        conn.task = yield from current_task()
        with self._lock:
            self._live.add(conn)
        try:
            yield from self._serve(stream.socket, conn)
        finally:
            with self._lock:
                self._live.discard(conn)

    @types.coroutine       # an async def app's coroutine is awaited here
    def _serve(self, socket, conn):
        """The read loop; the hot path: every request passes here, so names are local."""
        sock = socket.sock
        recv = sock.recv
        send = sock.send
        wait_read = socket._wait_read
        feed = conn.parser.feed_data
        ready = conn.ready
        app = self.app
        out = []
        drained = False
        while True:
            if drained:
                if self.closing and not conn.in_message:
                    return          # the server is stopping: a connection idle from now on closes
                # The last recv emptied the socket, so new bytes bring a new
                # edge: wait for it rather than pay a recv that fails first.
                if conn.in_head:
                    if not conn.head_deadline:
                        conn.head_deadline = self.head_deadline
                    conn.deadline = conn.head_deadline
                else:
                    conn.deadline = self.idle_deadline
                yield wait_read
                conn.deadline = _INF
            try:
                data = recv(READ_SIZE)
            except BlockingIOError:
                drained = True
                continue
            if not data:
                return
            drained = len(data) < READ_SIZE
            error = None
            try:
                feed(data)
            except HttpParserUpgrade:
                error = 0                          # answer what came before, then close
            except HttpParserError as e:
                reject = e.__context__
                error = reject.status if isinstance(reject, _Reject) else 400
            if conn.in_head and not ready and error is None:
                # httptools buffers an unfinished field itself, out of the
                # callbacks' sight: bound it by the reads that held nothing
                # but this head (all of them but, at most, the first).
                conn.head_read += len(data)
                if conn.head_read > self.max_head:
                    error = 431
            keep_alive = True
            for request in ready:
                try:
                    response = app(request)
                    if type(response) is GeneratorType or type(response) is CoroutineType:
                        response = yield from response
                    data, keep_alive = _encode(response, request.method == "HEAD",
                                               request.keep_alive and not self.closing,
                                               request.version)
                except Exception:
                    log.exception("app failed on %r; answering 500", request)
                    data, keep_alive = _encode(_INTERNAL_ERROR, False,
                                               request.keep_alive and not self.closing, "1.1")
                out.append(data)
                if not keep_alive:
                    break
            ready.clear()
            if error is not None and keep_alive:        # after a close, bytes are just dropped
                keep_alive = False
                if error:
                    out.append(_error(error))
            elif keep_alive and conn.pending_continue:
                conn.pending_continue = False
                out.append(_CONTINUE)
            if out:
                data = out[0] if len(out) == 1 else b"".join(out)
                out.clear()
                try:
                    sent = send(data)
                except BlockingIOError:
                    sent = 0
                if sent < len(data):
                    yield from self._send_rest(socket, conn, memoryview(data)[sent:])
            if not keep_alive:
                if error:
                    yield from self._linger(sock, wait_read, conn)
                return

    def _send_rest(self, socket, conn, view):
        """The part of a batch the socket did not take at once (the peer reads slowly)."""
        send = socket.sock.send
        # Counted as busy meanwhile: a graceful stop lets this answer finish.
        busy, conn.in_message = conn.in_message, True
        try:
            while view:
                try:
                    view = view[send(view):]
                except BlockingIOError:
                    conn.deadline = self.idle_deadline
                    yield socket._wait_write
                    conn.deadline = _INF
        finally:
            conn.in_message = busy

    def _linger(self, sock, wait_read, conn):
        """Half-close, then drop what the client still sends until it closes too."""
        try:
            sock.shutdown(_socket.SHUT_WR)
        except OSError:
            return
        conn.deadline = self.clock() + LINGER_TIMEOUT
        while True:
            try:
                if not sock.recv(READ_SIZE):
                    return
            except BlockingIOError:
                yield wait_read
            except OSError:
                return


@types.coroutine
def serve_http(app, host: str = "127.0.0.1", port: int = 0, *, path: str | None = None, ssl=None,
               ssl_handshake_timeout: float | None = HANDSHAKE_TIMEOUT, dispatcher=None,
               backlog: int = DEFAULT_BACKLOG, max_connections: int | None = None,
               reuse_port: bool = False, max_head: int = MAX_HEAD, max_body: int | None = MAX_BODY,
               idle_timeout: float = IDLE_TIMEOUT, header_timeout: float = HEADER_TIMEOUT,
               stop_grace: float = STOP_GRACE):
    """Serve ``app`` over HTTP/1.1 on ``host:port`` (or the Unix socket ``path``); a trap returning the ``Server``.

    ``server = yield from serve_http(app, "127.0.0.1", 0)``; the other
    arguments are ``serve_tcp``'s (``ssl=`` serves HTTPS), then the limits
    (``max_body=None``: no limit).
    """
    service = HttpService(app, current_kernel().clock.now, max_head=max_head, max_body=max_body,
                          idle_timeout=idle_timeout, header_timeout=header_timeout)
    server = yield from serve_tcp(service.handle, host, port, path=path, ssl=ssl,
                                  ssl_handshake_timeout=ssl_handshake_timeout, dispatcher=dispatcher,
                                  backlog=backlog, max_connections=max_connections,
                                  reuse_port=reuse_port, stop_grace=stop_grace)
    server.name = "http"
    yield from server.start_service(service.sweep, name="http-sweeper")
    return server
