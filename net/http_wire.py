"""The HTTP/1.1 messages: ``Headers``, ``Request``, ``Response``, and a response head as bytes.

A ``Response`` body is one of (RFC 9112 section 6 says how each is framed):

- bytes-like: sent with ``Content-Length``;
- an iterable of bytes chunks (a list, a generator): iterated on the
  connection's task and sent as the chunks come;
- a generator function ``producer(write)``: run as a coroutine on the
  connection's task, it sends each chunk with ``yield from write(chunk)``, so
  it may wait on I/O between chunks (rows read from a database, a file read
  on ``Dispatchers.IO``).

A streamed body goes out with chunked transfer coding, or as it is when the
app's headers give its ``Content-Length`` (the server then checks the count
and closes the connection if it does not match); an HTTP/1.0 client gets it
as it is, ended by the close. A chunk is sent under the connection's
back-pressure: ``write`` waits while the client is slow to read, so a body
is never gathered in memory.

``Response.upgrade(protocol, handler)`` answers a request that asked to
``Upgrade`` with ``101 Switching Protocols`` and hands the connection's
``Stream`` to ``handler(stream)`` (the bytes after the request already in it),
which speaks the new protocol (WebSocket, say) until it returns; the
connection closes then.
"""
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote


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
    """One parsed request: ``method``, ``path`` (percent-decoded; ``"*"`` for
    ``OPTIONS *``), ``query`` (raw), ``params`` (parsed query, last value wins),
    ``headers``, ``body``, ``version``, ``keep_alive`` and ``target`` (the raw
    request-target bytes). A request that asks to switch protocols carries an
    ``Upgrade`` header; see ``Response.upgrade``."""

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
        if target == b"*":
            self._path, self._query = "*", ""
            return
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
    """What ``app`` returns: a status, a body (see the module's docstring) and extra headers.

    ``headers`` is a sequence of ``(name, value)`` pairs (str or bytes); a
    tuple is encoded once and cached, so keep module-level header tuples
    constant. The server frames the body itself: a ``Content-Length`` given
    here counts only for a streamed body; ``Transfer-Encoding`` is dropped.
    1xx, 204 and 304 answers carry no body and no length, whatever is given.
    """

    __slots__ = ("status", "body", "headers", "_kept")

    def __init__(self, status: int = 200, body=b"", headers=()):
        self.status = status
        self.body = body
        self.headers = headers
        #: ``(status, headers, body, bytes)`` of its last usual answer (see ``encode``).
        self._kept = _NOTHING_KEPT

    def __repr__(self):
        return f"<Response {self.status}>"

    @classmethod
    def upgrade(cls, protocol: str, handler, headers=()) -> "Response":
        """``101 Switching Protocols`` to ``protocol``; then ``handler(stream)`` owns the connection."""
        return cls(101, handler, (("Upgrade", protocol), ("Connection", "Upgrade"), *headers))


def _status_line(status: int) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    return f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")


def _field(x) -> bytes:
    return x if isinstance(x, bytes) else str(x).encode("latin-1")


class Head:
    """A response head as bytes, and what its fields say about the framing.

    ``prefix``: the status line and the app's fields, without the framing
    ones; ``closes``: the app said ``Connection: close``; ``bodyless``: the
    status allows no body (1xx, 204, 304); ``plain``: neither, so a bytes
    body goes out with its length and the connection stays open;
    ``length``: the app's ``Content-Length``, or None.
    """

    __slots__ = ("headers", "prefix", "closes", "bodyless", "plain", "length", "last")

    def __init__(self, status: int, headers):
        fields = [_STATUS_LINES.get(status) or _status_line(status)]
        self.closes = False
        self.length = None
        for name, value in headers:
            name, value = _field(name), _field(value)
            if b"\n" in name + value or b"\r" in name + value:
                raise ValueError(f"response header {name!r} holds a line break (response splitting)")
            lower = name.lower()
            if lower == b"connection" and value.lower() == b"close":
                self.closes = True
            elif lower == b"content-length":
                self.length = int(value)
            elif lower != b"transfer-encoding":
                fields.append(b"%s: %s\r\n" % (name, value))
        self.headers = headers
        self.prefix = b"".join(fields)
        self.bodyless = status < 200 or status in (204, 304)
        self.plain = not self.closes and not self.bodyless


#: Largest body whose whole usual answer a ``Response`` keeps for the next time (see ``encode``).
CACHED_BODY = 1024
_NOTHING_KEPT = (None, None, object(), None)    # its body is no body
_STATUS_LINES = {s.value: _status_line(s.value) for s in HTTPStatus}
_BARE = {s.value: Head(s.value, ()) for s in HTTPStatus}
#: Encoded heads of header tuples, keyed by (status, id(tuple)); the entry
#: holds the tuple, so its id cannot be reused while cached. An app returning
#: module-level constants encodes them once.
_HEADS = {}
_MAX_HEADS = 256
#: The last (status, headers, head) looked up: most apps answer the same way
#: every time, and this check is a third of the encoding's cost cheaper.
_last = (None, None, None)


def head(status: int, headers) -> Head:
    """The encoded ``Head`` of ``status`` with ``headers`` (cached for tuples)."""
    global _last
    last = _last                     # one read: other threads may replace it meanwhile
    if last[1] is headers and last[0] == status:
        return last[2]
    if not headers:
        entry = _BARE.get(status) or Head(status, ())
    elif type(headers) is not tuple:
        return Head(status, headers)
    else:
        entry = _HEADS.get((status, id(headers)))
        if entry is None or entry.headers is not headers:
            if len(_HEADS) >= _MAX_HEADS:
                _HEADS.clear()
            entry = _HEADS[status, id(headers)] = Head(status, headers)
    _last = (status, headers, entry)
    return entry


def connection_field(keep_alive: bool, version: str) -> bytes:
    """The ``Connection`` field a response needs (none for a kept HTTP/1.1 connection)."""
    if not keep_alive:
        return b"Connection: close\r\n"
    return b"Connection: keep-alive\r\n" if version == "1.0" else b""


def encode(resp, head_only: bool, keep_alive: bool, version: str):
    """``resp``, whose body is bytes-like (or ignored: bodyless status, HEAD), as bytes,
    and whether the connection may stay open after it.

    The usual answer (a bytes body, a head that neither closes nor forbids
    a body, on a kept HTTP/1.1 connection, not to HEAD) of a body up to
    ``CACHED_BODY`` is kept in ``resp._kept``: an app answering with a
    constant ``Response`` is answered with the very same bytes, built once
    (``HttpService._answer`` looks there first).
    """
    status, headers, body = resp.status, resp.headers, resp.body
    h = head(status, headers)
    if type(body) is bytes and keep_alive and h.plain and not head_only and version == "1.1":
        wire = b"%sContent-Length: %d\r\n\r\n%s" % (h.prefix, len(body), body)
        if len(body) <= CACHED_BODY:
            resp._kept = (status, headers, body, wire)     # one store: other threads read it whole
        return wire, True
    keep_alive = keep_alive and not h.closes
    if h.bodyless:
        framing, body = b"", b""
    elif isinstance(body, (bytes, bytearray, memoryview)):
        framing = b"Content-Length: %d\r\n" % len(body)
    else:                                   # HEAD of a streamed body: its framing, no chunks
        framing = b"Content-Length: %d\r\n" % h.length if h.length is not None else \
            b"Transfer-Encoding: chunked\r\n" if version == "1.1" else b""
        body = b""
    return b"%s%s%s\r\n%s" % (h.prefix, framing, connection_field(keep_alive, version),
                              b"" if head_only else body), keep_alive


def error_response(status: int) -> bytes:
    """A bare error answer that closes the connection."""
    return encode(Response(status), False, False, "1.1")[0]
