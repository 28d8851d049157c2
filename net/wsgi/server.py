"""The connection side of the WSGI server: one coroutine per connection on the kernel.

It stands on ``net``: ``net.tcp``'s ``Server`` listens (TCP or a Unix
socket), runs the TLS handshake (``ssl=``) and hands over a ``Stream`` whose
socket speaks TLS, so the loop here reads and sends one way over either;
``net.http``'s ``HttpService`` is the base of ``WsgiService``, giving it the
parser step, the head's limits and checks, the coarse deadlines and the
lingering close.

A connection reads and parses on Main (``request.RequestReader``) and hands
a request to the app's pool as soon as its head is parsed; its body streams
to the app's ``wsgi.input`` (``body.BodyPipe``) while the connection goes
on reading it, pausing while the app has ``BODY_BUFFER`` bytes unread. So a
slow client, an idle keep-alive connection or a slow upload costs a
coroutine, and a thread only while the app runs (an app that reads a slow
body waits on its pool thread, as under gunicorn's gthread). The app runs on
the pool (``response.run_app``) and hands its response back through the
connection's ``Outbox``; the connection sends it, waiting whenever the
socket is full, and reports every part sent, which is the back-pressure the
app's thread waits on.

Timeouts cost no timer per request (as in ``net.http``): a waiting connection
copies a coarse deadline and one sweeper per server cancels the connections
past theirs, every ``sweep_every`` seconds.
"""
import logging
import os
import socket as _socket
from functools import partial

from genloop.kernel import Cancelled, Dispatchers, current_kernel, spawn
from genloop.kernel.signals import STOP_GRACE
from genloop.net.http import HEADER_TIMEOUT, LINGER_TIMEOUT, MAX_HEAD, MAX_SWEEP, HttpService, Response
from genloop.net.http_wire import encode, error_response
from genloop.net.socket import Socket
from genloop.net.tcp import DEFAULT_BACKLOG, Server, listen

from .accesslog import AccessLog
from .body import SpooledBody
from .environ import base_environ, build_environ
from .request import MAX_BODY, RequestReader
from .response import CONTINUE, FileWrapper, run_app

log = logging.getLogger("genloop.net.wsgi")

#: Seconds an idle keep-alive connection is kept (gunicorn's ``--keep-alive`` default).
KEEP_ALIVE = 2.0
#: Seconds an app may take to start its response before the client gets 503 (gunicorn's ``--timeout``; 0: none).
APP_TIMEOUT = 30.0
#: Seconds a request body may stall, or a client may not read our response, before the connection is cut
#: (nginx's ``client_body_timeout`` and ``send_timeout`` are 60).
IO_TIMEOUT = 30.0
#: Unread request body past which a response closes the connection rather than
#: reading and dropping the rest (reading 1 MiB costs less than a new connection;
#: gunicorn drains without a bound, nginx's lingering close up to 5 s).
MAX_DRAIN = 1024 * 1024
#: Threads of the app's pool when neither ``threads`` nor ``pool`` is given (waitress's default).
DEFAULT_THREADS = 4

_INF = float("inf")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CHUNK_END = b"0\r\n\r\n"
_TEXT = (("Content-Type", "text/plain"),)


_REASONS = {500: b"Internal Server Error", 503: b"Service Unavailable"}


def _error(status: int, keep_alive: bool = False) -> bytes:
    """A 500 or 503 the app did not write, with its reason as a text body."""
    return encode(Response(status, _REASONS[status], _TEXT), False, keep_alive, "1.1")[0]


class WsgiService(HttpService):
    """A WSGI app, its pool, limits and live connections; ``handle`` is the ``Server``'s handler.

    An ``HttpService`` (its read loop, parser step, head limits, deadlines
    and lingering close) whose ``_answer`` is its own: an answer here is a job
    on ``pool`` (each request's call, its iteration and its ``close()`` on one
    of its threads), started once the head is parsed, whose body streams to
    it while the read loop goes on, and whose response comes through an
    ``Outbox``; a stalled body (``body_deadline``) or a client that does not
    read gets ``io_timeout``, not the keep-alive timeout. Once ``closing`` (the server was closed), responses say
    ``Connection: close`` and connections between requests are cancelled.
    """

    def __init__(self, app, pool, clock, *, base: dict, access_log=None,
                 max_head=MAX_HEAD, max_body=MAX_BODY, keep_alive=KEEP_ALIVE, header_timeout=HEADER_TIMEOUT,
                 app_timeout=APP_TIMEOUT, io_timeout=IO_TIMEOUT, spool_chunked=False):
        self.pool = pool
        self.base = base
        self.access_log = access_log
        self.app_timeout = app_timeout
        self.io_timeout = io_timeout
        self._jobs = 0
        if spool_chunked:
            self.Connection = partial(RequestReader, spool_chunked=True)
        super().__init__(app, clock, max_head=max_head, max_body=max_body, idle_timeout=keep_alive,
                         header_timeout=header_timeout)
        self.sweep_every = min(MAX_SWEEP, *(t / 4 for t in (keep_alive, header_timeout, app_timeout, io_timeout) if t > 0))
        self._advance(clock())

    def _advance(self, now):
        super()._advance(now)
        self.now = now + self.sweep_every       # deadlines one sweep late: never cut early
        self.body_deadline = self.now + self.io_timeout
        self._flush_log()

    @property
    def jobs(self) -> int:
        """Requests whose app call is still running on the pool."""
        return self._jobs

    def sweep(self):
        """``HttpService``'s sweeper; the access log is flushed once a sweep (``_advance``) and at the end."""
        try:
            yield from super().sweep()
        finally:
            self._flush_log()

    def _flush_log(self):
        if self.access_log is not None:
            self.access_log.flush()

    Connection = RequestReader

    def _serve(self, socket, conn):
        """``HttpService``'s read loop; then a body that did not end makes its app's read raise, and the answer in flight ends."""
        try:
            yield from super()._serve(socket, conn)
        except Cancelled:
            conn.cut(TimeoutError("the connection was cut (a timeout, or the server stopped) before the request body ended"))
            raise
        finally:
            conn.cut(ConnectionResetError("the client left before the end of the request body"))
            conn.outbox.abandon()
            if conn.responder is not None:
                conn.responder.cancel()
                yield from conn.responder.wait_done()   # it may still send (a 503): the socket must stay open

    def _answer(self, socket, conn):
        """Answer the parsed requests in order, each from the moment its head is parsed; False once the connection ends.

        ``HttpService``'s read loop calls it after each parsed slice. A request
        whose body is still to come is answered by a task of its own
        (``_respond``), so the loop goes on reading that body meanwhile: this
        returns at once, unless the app has ``BODY_BUFFER`` bytes unread, then
        it waits until the app reads. Once a request is all in, this waits
        until its answer is sent: a connection answers one request at a time
        and reads no further meanwhile. A request that came whole is answered
        right here, in the connection's task.
        """
        peer = conn.stream.peer                 # a Unix peer's is "" (falsy): REMOTE_ADDR is then empty
        ready = conn.ready
        # Counted as busy meanwhile, as HttpService._flush does: a graceful stop lets these answers finish.
        busy, conn.in_message = conn.in_message, True
        try:
            pipe = conn.pipe
            if conn.error is not None and pipe is not None:         # bad framing, or too long, mid-body
                conn.cut(ConnectionAbortedError("the request body is " + ("too long" if conn.error == 413
                                                                         else "malformed")))
                if conn.responder is not None and pipe is conn.answering.body:
                    conn.cut_body = True                # its app's read raises; no error answer on top of its own
                elif ready and ready[-1].body is pipe:
                    ready.pop()                         # its app has not started: the error is the answer
            while True:
                if conn.responder is not None:
                    pipe = conn.pipe
                    if conn.answered.is_set():
                        conn.responder = conn.answering = None
                    elif pipe is not None and pipe is conn.answering.body:
                        if not pipe.full:
                            return True                 # read on: the app waits for more of its body
                        pipe.room.clear()
                        if not pipe.full:               # the app read meanwhile
                            return True
                        yield from self._wait_app(conn, pipe.room)
                        continue
                    else:
                        yield from self._wait_app(conn, conn.answered)
                        continue
                if not conn.keep:
                    if conn.pipe is not None and conn.error is None:
                        yield from self._linger(socket.sock, socket._wait_read, conn)   # a body is still coming
                    return False
                if not ready:
                    break
                request = ready.pop(0)
                conn.awaiting_head = True               # from now, before the answer's task first runs
                if request.body is None or request.body.done:
                    yield from self._respond(socket, conn, request, peer)
                else:
                    conn.answered.clear()
                    conn.answering = request
                    conn.responder = yield from spawn(self._respond, socket, conn, request, peer, name="wsgi-answer")
            if conn.error is not None:
                if not conn.cut_body:
                    yield from self._send(socket, conn, error_response(conn.error))
                return False
            if conn.pending_continue and type(conn.pipe) is SpooledBody:
                conn.pending_continue = False           # no app reads it yet: the server asks for it
                yield from self._send(socket, conn, _CONTINUE)
            return True
        finally:
            conn.in_message = busy

    def _wait_app(self, conn, event):
        """Wait for ``event``, set from the app's side; ``app_timeout`` runs meanwhile if its response has not begun."""
        timed = conn.awaiting_head and self.app_timeout
        if timed:
            conn.answer_deadline = self.now + self.app_timeout
        yield from event.wait()
        if timed and conn.awaiting_head:
            conn.answer_deadline = _INF         # reading the body again: the client's pace, not the app's

    def _respond(self, socket, conn, request, peer):
        """Run the app for ``request`` and send its response; ``conn.keep`` says whether the connection goes on."""
        method, target, version = request.method, request.target, request.version
        outbox = conn.outbox
        body = request.body
        with self._lock:
            self._jobs += 1
        code, sent, keep = 500, 0, False
        try:
            # sendfile only on a plain socket: TLS must encrypt each byte itself.
            sendfile = type(socket.sock) is _socket.socket
            yield from spawn(self._job, request, peer, outbox, sendfile, dispatcher=self.pool, name="wsgi-app")
            if self.app_timeout and (body is None or body.done):
                conn.answer_deadline = self.now + self.app_timeout
            try:
                while (part := (yield from outbox.queue.get())) is CONTINUE:
                    yield from self._send(socket, conn, _CONTINUE)
            except Cancelled:
                if self.app_timeout and conn.answer_deadline < self.clock():   # the sweeper: --timeout passed
                    # Answer, best effort, without waiting.
                    code = 503
                    log.error("%s %s: no response within %s s; answering 503", method, target.decode("latin-1"),
                              self.app_timeout)
                    try:
                        socket.sock.send(_error(503))
                    except OSError:
                        pass
                raise
            finally:
                conn.awaiting_head = False
                conn.answer_deadline = _INF
            keep = request.keep_alive and not self.closing and _may_keep(body)
            if part is None:                        # the app failed before its head
                yield from self._send(socket, conn, _error(500, keep))
            else:
                code, head, length, closes, chunks, done = part
                keep, sent = yield from self._send_response(socket, conn, outbox, version, keep and not closes,
                                                            method == "HEAD", code, head, length, chunks, done)
            if not keep and body is not None and not body.done:
                # The read loop may wait for body bytes the client no longer sends: end our side now,
                # so the client sees the response end, and give the loop a lingering close's time.
                try:
                    socket.sock.shutdown(_socket.SHUT_WR)
                except OSError:
                    pass
                conn.answer_deadline = self.clock() + LINGER_TIMEOUT
        finally:
            conn.keep = keep
            conn.answered.set()
            if self.access_log is not None:
                self.access_log.log(peer, method, target, version, code, sent, request.headers)

    def _job(self, request, peer, outbox, sendfile):
        """On a pool thread: build the environ, run the app, let go of its body; never raises."""
        try:
            environ = build_environ(self.base, request, peer)
            run_app(self.app, environ, outbox, sendfile)
        finally:
            if request.body is not None:
                request.body.close()            # what it did not read is dropped as it comes
            with self._lock:
                self._jobs -= 1
        return
        yield  # pragma: no cover - a generator function, so spawn runs it on the pool

    def _send_response(self, socket, conn, outbox, version, keep, head_only, code, head, length,
                       chunks, done):
        """Frame and send the response whose head part came; returns ``(keep_alive, body bytes sent)``."""
        bodyless = code < 200 or code == 204 or code == 304
        wrapper = chunks if type(chunks) is FileWrapper else None
        framing = b""
        chunked = False
        if wrapper is not None:
            count = wrapper.plan[2] if length is None else min(length, wrapper.plan[2])
            if length is None:
                framing = b"Content-Length: %d\r\n" % count
        elif bodyless or length is not None:
            pass
        elif done:
            framing = b"Content-Length: %d\r\n" % sum(map(len, chunks))
        elif version == "1.1":
            framing = b"Transfer-Encoding: chunked\r\n"
            chunked = True
        else:
            keep = False                            # HTTP/1.0: the close ends the body
        if not keep:
            framing += b"Connection: close\r\n"
        elif version == "1.0":
            framing += b"Connection: keep-alive\r\n"
        send_body = not (head_only or bodyless)
        remaining = length if length is not None else _INF
        sent = 0
        out = [head, framing, b"\r\n"]
        try:
            if wrapper is not None:
                yield from self._send(socket, conn, b"".join(out))
                if send_body:
                    sent = yield from self._sendfile(socket, conn, wrapper.plan[0], wrapper.plan[1], count)
                    keep = keep and sent == count
                return keep, sent
            while True:
                size = 0
                if chunks:
                    size = sum(map(len, chunks))
                    if send_body:
                        if remaining < size:              # more than its Content-Length: cut there
                            data = b"".join(chunks)[:remaining]
                            chunks = [data] if data else []
                        for chunk in chunks:
                            if chunked:
                                out += (b"%x\r\n" % len(chunk), chunk, b"\r\n")
                            else:
                                out.append(chunk)
                            sent += len(chunk)
                            remaining -= len(chunk)
                if done and chunked and send_body:
                    out.append(_CHUNK_END)
                if out:
                    yield from self._send(socket, conn, out[0] if len(out) == 1 else b"".join(out))
                    out.clear()
                if size:
                    outbox.sent(size)
                if done:
                    break
                part = yield from outbox.queue.get()
                while part is CONTINUE:           # the app read its body after its head: too late for 100
                    part = yield from outbox.queue.get()
                if part is None:                  # the app failed mid-body: cut, so the client sees it
                    return False, sent
                chunks, done = part
            if length is not None and send_body and sent < length:
                keep = False                      # fewer bytes than promised: the client would wait
            return keep, sent
        finally:
            if wrapper is not None and hasattr(wrapper, "close"):
                wrapper.close()

    def _send(self, socket, conn, data):
        """Send all of ``data``, waiting while the client does not read (up to ``io_timeout``).

        A TLS send that raises ``BlockingIOError`` is retried with the same bytes, as it must be.
        """
        send = socket.sock.send
        try:
            n = send(data)
        except BlockingIOError:
            n = 0
        if n < len(data):
            view = memoryview(data)[n:]
            while view:
                try:
                    view = view[send(view):]
                except BlockingIOError:
                    yield from self._wait_writable(socket, conn)

    def _wait_writable(self, socket, conn):
        conn.answer_deadline = self.now + self.io_timeout
        yield socket._wait_write
        conn.answer_deadline = _INF

    def _sendfile(self, socket, conn, fd, offset, count):
        """``os.sendfile`` from the file to the socket; the bytes sent."""
        out = socket.sock.fileno()
        sent = 0
        while sent < count:
            try:
                n = os.sendfile(out, fd, offset + sent, count - sent)
            except BlockingIOError:
                yield from self._wait_writable(socket, conn)
                continue
            if not n:                             # the file shrank
                break
            sent += n
        return sent


def _may_keep(body) -> bool:
    """Whether the connection may go on after a response that leaves ``body`` (a ``BodyPipe`` or None) unread.

    Only if the rest is short enough to read and drop (``MAX_DRAIN``) and
    the client is sending it: one still waiting for ``100 Continue`` may
    never send it.
    """
    if body is None or body.done:
        return True
    remaining = body.remaining
    return remaining is not None and remaining <= MAX_DRAIN and not body.held_back


def _listener_name(sock) -> tuple:
    """``(SERVER_NAME, SERVER_PORT)`` of a listening socket."""
    addr = sock.getsockname()
    if not isinstance(addr, tuple):             # a Unix socket: a path (bytes if abstract)
        return "localhost", "80"
    return addr[0], str(addr[1])


def serve_wsgi(app, host: str = "127.0.0.1", port: int = 0, *, path: str | None = None, threads: int | None = None,
               pool=None, sock=None, ssl=None, reuse_port: bool = False, backlog: int = DEFAULT_BACKLOG,
               stop_grace: float = STOP_GRACE, access_log=None, script_name: str = "", multiprocess: bool = False,
               **limits):
    """Serve the WSGI ``app`` on ``host:port`` (or the Unix socket ``path``); a trap returning the listening ``Server``.

    ``server = yield from serve_wsgi(app, "127.0.0.1", 0, threads=8)``. The app
    runs on ``pool`` (a dispatcher) or, by default, on ``Dispatchers.IO.limited(threads)``
    (``threads`` defaults to ``DEFAULT_THREADS``). ``sock`` is an already listening socket
    (TCP or Unix, bound before a fork, say) to serve instead of binding; ``ssl`` an
    ``ssl.SSLContext`` for HTTPS (``serve_tcp``'s, its handshake bounded by
    ``header_timeout``); ``stop_grace`` how long a graceful stop (SIGTERM) lets
    requests in flight finish; ``access_log`` a text stream for the
    combined log; ``limits`` are ``WsgiService``'s (``keep_alive``,
    ``app_timeout``, ``io_timeout``, ``header_timeout``, ``max_head``, ``max_body``,
    ``spool_chunked``: read a chunked body whole before the app runs, so it gets
    ``CONTENT_LENGTH``, which Django needs).
    """
    if pool is None:
        pool = Dispatchers.IO.limited(threads or DEFAULT_THREADS)
    if sock is None:
        listener = listen(host, port, path=path, backlog=backlog, reuse_port=reuse_port)
    else:
        listener = Socket(sock)
    server_name, server_port = _listener_name(listener.sock)
    base = base_environ(scheme="https" if ssl is not None else "http", server_name=server_name,
                        server_port=server_port, script_name=script_name, multiprocess=multiprocess,
                        file_wrapper=FileWrapper)
    service = WsgiService(app, pool, current_kernel().clock.now, base=base,
                          access_log=AccessLog(access_log) if access_log is not None else None, **limits)
    server = Server(service.handle, listener, ssl=ssl, ssl_handshake_timeout=service.header_timeout,
                    stop_grace=stop_grace, name="wsgi")
    server.service = service
    yield from server.start()
    yield from server.start_service(service.sweep, name="wsgi-sweeper")
    return server
