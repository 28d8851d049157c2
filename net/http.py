"""HTTP/1.1 server on ``serve_tcp``: keep-alive, pipelining, limits, timeouts, back-pressure.

``app(request)`` is a generator function (an ``async def`` or a plain function
works too) given a ``Request`` and returning a ``Response`` (``http_wire`` says what a body may
be: bytes, an iterable of chunks, or a producer coroutine). Each connection
is one task that reads the socket directly in large chunks and feeds
``httptools`` from it, ``PARSE_SLICE`` bytes at a time; the requests of a
slice are answered in order and their bytes queued, and the queue goes out
in one ``send`` after the read, so a pipelining client costs one system call
per batch, not per request.

Back-pressure: once more than ``high_water`` bytes (``HIGH_WATER``) wait to
be sent, the connection sends them and waits until the client has taken them
all before it answers, parses or reads anything more (the flow control of
nginx and uvicorn). A client that pipelines and never reads therefore holds
at most about ``high_water`` + one response + one read of the server's memory.

Limits answer instead of crashing: a request head over ``max_head`` bytes
gets 431 (414 when the request-target alone is over it), a body over
``max_body`` 413, a malformed request 400 (so does a missing or repeated
``Host`` on HTTP/1.1, ``Transfer-Encoding`` on HTTP/1.0, an asterisk-form
target but ``OPTIONS *``), a version but 1.0 and 1.1 505, ``CONNECT`` 501;
each of those closes the connection after the requests before it are
answered. An exception in ``app`` is logged and answered with 500; the
request was read whole, so the connection goes on. A request asking to
``Upgrade`` is an ordinary request unless the app answers it with
``Response.upgrade``; the connection then goes on after it.

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
from collections import deque
from types import CoroutineType, GeneratorType

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from genloop.kernel import coroutine, current_kernel, current_task, sleep
from genloop.kernel.gentypes import Gen

from .http_wire import Headers, Request, Response, connection_field, encode, error_response, head
from .stream import READ_SIZE
from .tcp import DEFAULT_BACKLOG, STOP_GRACE, Server, serve_tcp
from .tls import HANDSHAKE_TIMEOUT

__all__ = ["serve_http", "HttpService", "Headers", "Request", "Response"]

log = logging.getLogger("genloop.net.http")

#: Bytes of a read given to the parser at a time, each slice's requests
#: answered before the next is parsed: a read of tiny pipelined requests then
#: holds at most ~150 parsed requests, not ~2,400.
PARSE_SLICE = 4 * 1024
#: Unsent response bytes above which a connection stops answering, parsing and
#: reading until the client has read them (uvicorn and h11 pause at 64 KiB too).
HIGH_WATER = 64 * 1024
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
#: Pieces per ``sendmsg``: Linux's IOV_MAX.
MAX_IOV = 1024
#: Most ``_Connection``s kept for reuse once idle connections lend theirs back
#: (as many as connections were busy at once, up to this).
MAX_SPARE = 256

_INF = float("inf")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_INTERNAL_ERROR = Response(500)
#: ``_answer_rest``'s ``response`` when the app is still to be asked (it may return anything, None too).
_NOT_ASKED = object()
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}
#: A ``Request`` made empty, its fields set as the parser reaches them.
_new = object.__new__


class _Reject(Exception):
    """Raised from a parser callback to stop parsing and answer ``status``."""

    def __init__(self, status):
        self.status = status


def _check_target(method, target):
    """Refuse what no app should see: CONNECT (tunnels) and ``*`` but for OPTIONS."""
    if method == b"CONNECT":
        raise _Reject(501)
    if target == b"*" and method != b"OPTIONS":
        raise _Reject(400)


# What ``_Connection.seen`` records of a request's head: its ``Host`` fields
# counted in the low bits (``max_head`` bounds their number far below 2**32),
# and the rarer fields that change how it is read as flags above them. The
# usual head has one ``Host`` and none of the rest: ``seen == 1``.
_HOSTS = (1 << 32) - 1
_CONNECTION = 1 << 32       # a Connection field: the version must be asked for
_EXPECT = 1 << 33           # Expect: 100-continue
_CHUNKED = 1 << 34          # Transfer-Encoding
#: Lengths of the field names ``_Connection._note`` looks at (``Host`` aside).
_NOTED_LENGTHS = frozenset(map(len, (b"connection", b"content-length", b"expect", b"transfer-encoding")))


class _Connection:
    """The parser's callbacks and the state of a connection with a request in hand.

    Completed requests pile up in ``ready``, answers in ``out`` (``pending``
    bytes of them). Kept small: these callbacks run for every request, and
    each one the parser is given costs a call per request (so there is no
    ``on_message_begin``: a request begins with the first part of its target,
    which every request has; ``HttpService._parse`` marks the rarer slice that
    ends inside a method). ``request`` is the request being parsed, built as
    its parts arrive; ``seen`` what its head held that matters to the
    server (see ``_HOSTS``): the usual head is checked in a few steps, any
    other by ``_check_head``. ``deadline`` is how long the connection may keep
    waiting (infinite while it is busy); the sweeper reads it. ``error`` is
    the status a request that cannot be parsed gets; ``upgrading`` the
    request the parser stopped at because it asked to switch protocols,
    ``rest`` the bytes after it.

    Owned by the connection task that borrowed it (``HttpService._serve``);
    between requests it waits in ``HttpService._spare``, at a message's end
    (its parser is then as ready for another connection's request as for
    its own next one), ``stream`` cleared.
    """

    __slots__ = ("parser", "stream", "max_head", "max_body", "ready", "out", "pending", "error",
                 "in_message", "in_head", "head_size", "head_read", "head_deadline", "deadline",
                 "request", "seen", "body", "body_size", "pending_continue", "upgrading", "rest")

    def __init__(self, max_head, max_body, stream):
        self.parser = HttpRequestParser(self)
        self.stream = stream
        self.max_head = max_head
        self.max_body = max_body
        self.ready = []
        self.out = []
        self.pending = self.body_size = self.seen = 0
        self.error = self.upgrading = self.request = self.body = None
        self.rest = b""
        self.in_message = self.in_head = self.pending_continue = False
        self.head_size = self.head_read = 0
        self.head_deadline = 0.0
        self.deadline = _INF

    @property
    def chunked(self) -> bool:
        """The request being parsed (or the last one) has a ``Transfer-Encoding``."""
        return bool(self.seen & _CHUNKED)

    # -- the parser's callbacks ---------------------------------------------
    def on_url(self, part):
        request = self.request
        if request is None:             # a new request
            self.request = request = _new(Request)
            request.target = part
            request.headers = Headers()
            self.seen = self.body_size = 0
            self.head_size = len(part)
            self.in_message = self.in_head = True
        else:
            request.target += part
            self.head_size += len(part)
        if self.head_size > self.max_head:
            raise _Reject(414)

    def on_header(self, name, value):
        n = len(name)
        self.head_size += n + len(value) + 4
        if self.head_size > self.max_head:
            raise _Reject(431)
        if n == 4 and (name == b"Host" or name.lower() == b"host"):
            self.seen += 1
        elif n in _NOTED_LENGTHS:
            self._note(name.lower(), value)
        self.request.headers.append((name, value))

    def _note(self, name, value):
        """A field, ``name`` in lower case, that may change how the request is read."""
        if name == b"connection":
            self.seen |= _CONNECTION
        elif name == b"content-length":
            if self.max_body is not None and int(value) > self.max_body:
                raise _Reject(413)
        elif name == b"expect":
            if value.lower() == b"100-continue":
                self.seen |= _EXPECT
        elif name == b"transfer-encoding":
            self.seen |= _CHUNKED

    def on_headers_complete(self):
        parser = self.parser
        request = self.request
        keep_alive = request.keep_alive = parser.should_keep_alive()
        method = parser.get_method()
        request.method = _METHODS.get(method) or method.decode("latin-1")
        # llhttp takes HTTP/0.9, 1.0, 1.1 and 2.0 only, and keeps only 1.1
        # alive without a Connection field: that spares get_http_version (0.15 us).
        if keep_alive and self.seen == 1 and request.target[0] == 47:   # one Host; origin-form ("/...")
            request.version = "1.1"
        else:
            self._check_head(request, method, keep_alive)
        self.in_head = False
        self.head_read = 0
        self.head_deadline = 0.0

    def _check_head(self, request, method, keep_alive):
        """The head of any but the usual request: its version, its ``Host`` fields, its target, ``Expect``."""
        seen = self.seen
        version = request.version = "1.1" if keep_alive and not seen & _CONNECTION else self.parser.get_http_version()
        hosts = seen & _HOSTS
        if version != "1.1":
            if version != "1.0":
                raise _Reject(505)
            if seen & _CHUNKED or hosts > 1:        # RFC 9112 6.1; RFC 9110 7.2
                raise _Reject(400)
        elif hosts != 1:
            raise _Reject(400)
        if request.target[0] != 47:                 # not origin-form ("/..."): the rare kinds
            _check_target(method, request.target)
        if seen & _EXPECT and version == "1.1":
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
        request = self.request          # take_request, inlined: a call fewer per request
        body = self.body
        if body is None:
            request.body = b""
        else:
            request.body = b"".join(body)
            self.body = None
        self.request = None
        self.in_message = self.pending_continue = False
        self.ready.append(request)

    def take_request(self, body) -> Request:
        """The request being parsed, with ``body``; the next part parsed begins a new one.

        Readers that publish a request before its body is in (the WSGI
        server's) take it when its head is complete.
        """
        request = self.request
        request.body = body
        self.request = None
        return request

    # -- Upgrade -------------------------------------------------------------
    def stop_at_upgrade(self, rest: bytes):
        """The parser stopped after a request asking to Upgrade; ``rest`` follows it."""
        request = self.upgrading = self.ready[-1]
        self.rest = rest
        if self.chunked or request.headers.get("content-length", "0") != "0":
            request.keep_alive = False      # its body is in ``rest``, unparsed: end after the answer

    def resume(self) -> bytes:
        """The app did not switch protocols: parse on, from the bytes after the request."""
        self.parser = HttpRequestParser(self)
        self.upgrading = None
        rest, self.rest = self.rest, b""
        return rest


class _Idle:
    """What the sweeper sees of a connection idle between requests that lent its ``_Connection`` back.

    One per sweep, shared by every connection that went idle since: ``deadline``
    is the idle deadline of that sweep. The sweeper makes it (``_advance``)
    and never changes it after; connection tasks on any thread read
    ``HttpService.idle``, one reference, and store it in their entry.
    """

    __slots__ = ("deadline", "in_message")

    def __init__(self, deadline):
        self.deadline = deadline
        self.in_message = False


class _BodyWriter:
    """The ``write`` a streamed body's chunks go through: framed, queued, sent above the mark."""

    __slots__ = ("service", "socket", "conn", "chunked", "length", "sent")

    def __init__(self, service, socket, conn, chunked, length):
        self.service, self.socket, self.conn = service, socket, conn
        self.chunked, self.length = chunked, length
        self.sent = 0

    def write(self, chunk):
        """Send ``chunk`` (a coroutine: waits while the client is slow to read)."""
        if type(chunk) is not bytes:
            if not isinstance(chunk, (bytearray, memoryview)):
                raise TypeError(f"a body chunk must be bytes, not {type(chunk).__name__}")
            chunk = bytes(chunk)          # queued past this call: the caller may reuse its buffer
        n = len(chunk)
        if not n:
            return                        # an empty chunk would end chunked coding
        self.sent += n
        if self.length is not None and self.sent > self.length:
            raise ValueError(f"the body is longer than its Content-Length {self.length}")
        conn = self.conn
        if self.chunked:
            conn.out += (b"%x\r\n" % n, chunk, b"\r\n")
        else:
            conn.out.append(chunk)
        conn.pending += n
        if conn.pending > self.service.high_water:
            yield from self.service._flush(self.socket, conn)
            yield                         # a turn for the others, even if the client reads as fast


class HttpService:
    """An app, its limits and its live connections; ``handle`` is the stream handler.

    Deadlines come from a coarse clock the sweeper advances: a waiting
    connection copies ``idle_deadline`` (or ``head_deadline`` once, when a
    request head stays unfinished), so waiting costs no clock read and no
    timer. Both are one sweep later than exact, so a connection is not cut
    early (while the sweeper keeps its pace) and at most two sweeps late. Once ``closing`` (the server
    was closed), responses say ``Connection: close`` and connections idle
    between requests are cancelled.

    A connection idle between requests lends its ``Connection`` (the
    parser, most of what it holds) back to the service, and the next bytes
    to arrive on any connection borrow it (see ``_serve``). A subclass may
    answer otherwise: it replaces ``_answer`` (``net.wsgi`` runs each request
    on a thread pool), may keep more per connection in a subclass of
    ``Connection`` (then each connection keeps its own for its whole life),
    and may give a stalled body its own ``body_deadline``
    (``idle_deadline`` here) by extending ``_advance``.
    """

    #: One connection's state and parser callbacks.
    Connection = _Connection

    def __init__(self, app, clock, *, max_head=MAX_HEAD, max_body=MAX_BODY,
                 idle_timeout=IDLE_TIMEOUT, header_timeout=HEADER_TIMEOUT, high_water=HIGH_WATER):
        self.app = app
        self.clock = clock
        self.max_head = max_head
        self.max_body = max_body
        self.idle_timeout = idle_timeout
        self.header_timeout = header_timeout
        self.high_water = high_water
        self.sweep_every = min(MAX_SWEEP, idle_timeout / 4, header_timeout / 4)
        self.closing = False
        # Each connection's task -> its ``_Connection``, or the ``_Idle`` record
        # of the sweep in which it went idle. Every connection task writes its
        # own entry only; the sweeper reads a copy (``_select``).
        self._live = {}
        # ``_Connection``s lent back by idle connections, for the next one that
        # reads a request: pushed and popped by connection tasks on any thread
        # (deque's append and pop are atomic; at ``MAX_SPARE`` an append drops
        # the oldest). None when the connections are a subclass's, which may
        # hold state for the connection's whole life (``net.wsgi``'s answer in
        # flight): each then keeps its own.
        self._spare = deque(maxlen=MAX_SPARE) if self.Connection is _Connection else None
        self._lock = threading.Lock()   # for subclasses' counters: handlers may run on several threads
        self._advance(clock())

    def _advance(self, now):
        self.idle_deadline = now + self.idle_timeout + self.sweep_every
        self.head_deadline = now + self.header_timeout + self.sweep_every
        self.body_deadline = self.idle_deadline
        self.idle = _Idle(self.idle_deadline)

    def _select(self, pick):
        # list() copies the dict in one step (under the GIL; under the dict's
        # own lock without it), so connections may come and go meanwhile.
        return [task for task, c in list(self._live.items()) if pick(c)]

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
        """Serve one connection until it closes, errs or times out.

        A plain function returning ``_serve``'s coroutine: the connection's
        task then resumes through one generator fewer at every wake-up.
        """
        return self._serve(stream.socket, self._borrow(stream))

    def _borrow(self, stream):
        """A ``_Connection`` for ``stream`` to parse and answer with: a spare one, or a new one."""
        if self._spare:
            try:
                conn = self._spare.pop()
                conn.stream = stream
                return conn
            except IndexError:      # another thread took the last one
                pass
        return self.Connection(self.max_head, self.max_body, stream)

    # -- the connection loop -------------------------------------------------
    @coroutine       # an async def app's coroutine is awaited here
    def _serve(self, socket, conn):
        """Read, parse and answer until the connection ends: the hot path.

        An idle connection (its requests answered, waiting for the next)
        lends its ``conn`` to ``_spare`` and holds nothing but this frame; the
        next bytes borrow one again. A ``_Connection``'s parser is most of what
        a connection holds, and idle keep-alive connections are most
        connections; lent at a request's end, a parser is as a keep-alive
        connection's own would be, ready for a next request.
        """
        task = yield from current_task()
        stream = conn.stream
        live = self._live
        spare = self._spare
        live[task] = conn
        out = conn.out
        # Locals, but no bound methods: an idle connection's frame would keep them alive.
        sock = socket.sock
        wait_read = socket._wait_read
        drained = False
        try:
            while True:
                if drained:
                    # The last recv emptied the socket, so new bytes bring a new
                    # edge: wait for it rather than pay a recv that fails first.
                    if conn.in_message:
                        if conn.in_head:
                            if not conn.head_deadline:
                                conn.head_deadline = self.head_deadline
                            conn.deadline = conn.head_deadline
                        else:
                            conn.deadline = self.body_deadline
                        yield wait_read
                        conn.deadline = _INF
                    elif self.closing:
                        return          # the server is stopping: a connection idle from now on closes
                    elif spare is not None:
                        # Idle between requests: hold nothing but this frame meanwhile.
                        conn.stream = None
                        spare.append(conn)
                        live[task] = self.idle
                        yield wait_read
                        try:
                            conn = spare.pop()
                            conn.stream = stream
                        except IndexError:
                            conn = self.Connection(self.max_head, self.max_body, stream)
                        live[task] = conn
                        out = conn.out
                    else:
                        conn.deadline = self.idle_deadline
                        yield wait_read
                        conn.deadline = _INF
                try:
                    data = sock.recv(READ_SIZE)
                except BlockingIOError:
                    drained = True
                    continue
                if not data:
                    if spare is not None and not conn.in_message:
                        conn.stream = None
                        spare.append(conn)      # borrowed for the end of the stream: the next one takes it
                    return
                drained = len(data) < READ_SIZE
                while data:
                    data = self._parse(conn, data)
                    keep_alive = self._answer(socket, conn)
                    if type(keep_alive) is not bool:      # an answer must wait: run what finishes the slice
                        keep_alive = yield from keep_alive
                    if not keep_alive:
                        break
                    if conn.upgrading is not None:
                        data = conn.resume()
                if out:
                    data = b"".join(out)        # of one bytes piece, that piece itself: no copy
                    out.clear()
                    conn.pending = 0
                    try:
                        sent = sock.send(data)
                    except BlockingIOError:
                        sent = 0
                    if sent < len(data):
                        out.append(memoryview(data)[sent:])
                        yield from self._flush(socket, conn)
                    data = None         # an idle connection keeps no answer alive
                if not keep_alive:
                    if conn.error:
                        yield from self._linger(sock, wait_read, conn)
                    return
        finally:
            del live[task]

    def _parse(self, conn, data):
        """Feed the parser up to PARSE_SLICE bytes of ``data``; return the rest.

        A request the parser refuses sets ``conn.error``; one asking to
        Upgrade stops the parser, which keeps what follows in ``conn.rest``.
        """
        if len(data) > PARSE_SLICE:
            view = memoryview(data)
            data, rest = view[:PARSE_SLICE], view[PARSE_SLICE:]
        else:
            rest = b""
        try:
            conn.parser.feed_data(data)
        except HttpParserUpgrade as e:
            conn.stop_at_upgrade(bytes(data[e.args[0]:]) + bytes(rest))
            return b""
        except HttpParserError as e:
            reject = e.__context__
            conn.error = reject.status if isinstance(reject, _Reject) else \
                505 if "Invalid HTTP version" in str(e) else 400
            return b""
        if not conn.ready and not conn.in_message and bytes(data).strip(b"\r\n"):
            # Bytes but no target yet: the slice ended inside a method. (One
            # that also held whole requests looks idle meanwhile: at most a
            # method's few bytes wait on the idle deadline, not the head's.)
            conn.in_message = conn.in_head = True
        if conn.in_head and not conn.ready:
            # httptools buffers an unfinished field itself, out of the
            # callbacks' sight: bound it by the slices that held nothing
            # but this head (all of them but, at most, the first).
            conn.head_read += len(data)
            if conn.head_read > self.max_head:
                conn.error = 431
                return b""
        return rest

    def _answer(self, socket, conn):
        """Answer the parsed requests in order, queueing their bytes: whether the connection goes on.

        A plain function while each answer is bytes at once, the usual case,
        so a batch costs no generator. Once one must wait (for an app that
        suspends, a streamed body, or the client: past ``high_water`` queued
        bytes they are sent before the next request is answered, the
        back-pressure on a client that does not read), it returns the
        coroutine of ``_answer_rest`` instead, for ``_serve`` to run. (A
        subclass's ``_answer`` may be a coroutine itself.)
        """
        app = self.app
        out = conn.out
        ready = conn.ready
        keep_alive = True
        for request in ready:
            try:
                response = app(request)
                if type(response) is not Response:
                    return self._answer_rest(socket, conn, ready.index(request), response)
                kept = response._kept       # one read: another thread may replace it meanwhile
                if kept[2] is response.body and kept[1] is response.headers and kept[0] == response.status \
                        and request.keep_alive and request.version == "1.1" and request.method != "HEAD" \
                        and not self.closing:   # the usual answer, made before: what encode would make again
                    data = kept[3]
                elif type(response.body) is bytes and response.status >= 200:
                    data, keep_alive = encode(response, request.method == "HEAD",
                                              request.keep_alive and not self.closing, request.version)
                else:
                    return self._answer_rest(socket, conn, ready.index(request), response)
            except Exception:
                data, keep_alive = self._failed(request)
            out.append(data)
            conn.pending += len(data)
            if not keep_alive:
                break
            if conn.pending > self.high_water:
                return self._answer_rest(socket, conn, ready.index(request) + 1, _NOT_ASKED)
        if conn.error is None and not conn.pending_continue:
            ready.clear()
            return keep_alive
        return self._end_slice(conn, keep_alive)

    @coroutine       # it awaits an async def app's coroutine
    def _answer_rest(self, socket, conn, start, response):
        """``_answer`` from ``conn.ready[start]`` on, to which the app gave ``response`` (or ``_NOT_ASKED``)."""
        app = self.app
        out = conn.out
        keep_alive = True
        if conn.pending > self.high_water:
            yield from self._flush(socket, conn)
        for request in conn.ready[start:]:
            try:
                if response is _NOT_ASKED:
                    response = app(request)
                if type(response) is GeneratorType or type(response) is CoroutineType:
                    response = yield from response
                keep = request.keep_alive and not self.closing     # a stop may have begun meanwhile
                if type(response.body) is bytes and response.status >= 200:
                    data, keep_alive = encode(response, request.method == "HEAD", keep, request.version)
                else:
                    data, keep_alive = yield from self._answer_other(socket, conn, request, response, keep)
            except Exception:
                data, keep_alive = self._failed(request)
            response = _NOT_ASKED
            out.append(data)
            conn.pending += len(data)
            if conn.pending > self.high_water:
                yield from self._flush(socket, conn)
            if not keep_alive:
                break
        return self._end_slice(conn, keep_alive)

    def _failed(self, request):
        """The app failed on ``request``: log it; the 500 to answer, and whether the connection goes on."""
        log.exception("app failed on %r; answering 500", request)
        return encode(_INTERNAL_ERROR, False, request.keep_alive and not self.closing, "1.1")

    def _end_slice(self, conn, keep_alive):
        """The slice's requests are answered: then its parse error, or ``100 Continue``; whether the connection goes on."""
        conn.ready.clear()
        if conn.error is not None:
            if keep_alive:                  # after a close, the bad bytes are just dropped
                conn.out.append(error_response(conn.error))
            return False
        if keep_alive and conn.pending_continue:
            conn.pending_continue = False
            conn.out.append(_CONTINUE)
        return keep_alive

    def _answer_other(self, socket, conn, request, response, keep):
        """A response whose body is not plain bytes, or whose status is not final; ``(bytes, keep_alive)``."""
        status, body = response.status, response.body
        if status == 101:
            return (yield from self._switch(socket, conn, request, response))
        if status < 200:
            raise ValueError(f"{status} is not a final status (use Response.upgrade to switch protocols)")
        head_only = request.method == "HEAD"
        if isinstance(body, (bytearray, memoryview)):
            return encode(response, head_only, keep, request.version)
        if head_only or head(status, response.headers).bodyless:
            if type(body) is GeneratorType:
                body.close()
            return encode(response, head_only, keep, request.version)
        return (yield from self._stream(socket, conn, request, response, keep))

    def _stream(self, socket, conn, request, response, keep):
        """Send a streamed body as it is produced (see ``http_wire``); ``(bytes, keep_alive)``."""
        h = head(response.status, response.headers)
        version = request.version
        chunked = h.length is None and version == "1.1"
        keep = keep and not h.closes and (chunked or h.length is not None)
        framing = b"Transfer-Encoding: chunked\r\n" if chunked else \
            b"" if h.length is None else b"Content-Length: %d\r\n" % h.length
        conn.out.append(b"%s%s%s\r\n" % (h.prefix, framing, connection_field(keep, version)))
        writer = _BodyWriter(self, socket, conn, chunked, h.length)
        body = response.body
        try:
            if callable(body):
                yield from body(writer.write)
            else:
                for chunk in body:
                    yield from writer.write(chunk)
            if h.length is not None and writer.sent != h.length:
                raise ValueError(f"the body has {writer.sent} bytes, its Content-Length says {h.length}")
        except Exception:
            log.exception("streaming the body for %r failed; closing the connection", request)
            return b"", False
        return (b"0\r\n\r\n" if chunked else b""), keep

    def _switch(self, socket, conn, request, response):
        """Answer 101, then hand the connection's stream to the app's protocol handler."""
        if request is not conn.upgrading:
            raise ValueError(f"101 answers a request that asked to Upgrade; {request!r} did not")
        conn.out.append(head(101, response.headers).prefix + b"\r\n")
        yield from self._flush(socket, conn)
        stream = conn.stream
        stream._buf += conn.rest
        conn.rest = b""
        conn.upgrading = None
        try:
            yield from response.body(stream)
        except Exception:
            log.exception("the protocol handler after upgrading %r failed", request)
        return b"", False

    def _flush(self, socket, conn):
        """Send all of ``conn.out``, waiting while the client is slow to read: the back-pressure."""
        out = conn.out
        sock = socket.sock
        # Counted as busy meanwhile: a graceful stop lets this answer finish.
        busy, conn.in_message = conn.in_message, True
        try:
            while out:
                try:
                    sent = sock.send(out[0]) if len(out) == 1 else sock.sendmsg(out[:MAX_IOV])
                except BlockingIOError:
                    conn.deadline = self.idle_deadline
                    yield socket._wait_write
                    conn.deadline = _INF
                    continue
                _consume(out, sent)
        finally:
            conn.in_message = busy
        conn.pending = 0

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


def _consume(out: list, sent: int) -> None:
    """Drop the first ``sent`` bytes from the pieces in ``out``."""
    done = 0
    for piece in out:
        n = len(piece)
        if sent < n:
            break
        sent -= n
        done += 1
    del out[:done]
    if sent:
        out[0] = memoryview(out[0])[sent:]


@coroutine
def serve_http(app, host: str = "127.0.0.1", port: int = 0, *, path: str | None = None, ssl=None,
               ssl_handshake_timeout: float | None = HANDSHAKE_TIMEOUT, dispatcher=None,
               backlog: int = DEFAULT_BACKLOG, max_connections: int | None = None,
               reuse_port: bool = False, max_head: int = MAX_HEAD, max_body: int | None = MAX_BODY,
               idle_timeout: float = IDLE_TIMEOUT, header_timeout: float = HEADER_TIMEOUT,
               high_water: int = HIGH_WATER, stop_grace: float = STOP_GRACE) -> Gen[Server]:
    """Serve ``app`` over HTTP/1.1 on ``host:port`` (or the Unix socket ``path``); a trap returning the ``Server``.

    ``server = yield from serve_http(app, "127.0.0.1", 0)``; the other
    arguments are ``serve_tcp``'s (``ssl=`` serves HTTPS), then the limits
    (``max_body=None``: no limit) and ``high_water``, the unsent bytes at
    which a connection pauses.
    """
    service = HttpService(app, current_kernel().clock.now, max_head=max_head, max_body=max_body,
                          idle_timeout=idle_timeout, header_timeout=header_timeout, high_water=high_water)
    server = yield from serve_tcp(service.handle, host, port, path=path, ssl=ssl,
                                  ssl_handshake_timeout=ssl_handshake_timeout, dispatcher=dispatcher,
                                  backlog=backlog, max_connections=max_connections,
                                  reuse_port=reuse_port, stop_grace=stop_grace, name="http")
    yield from server.start_service(service.sweep, name="http-sweeper")
    return server
