"""Reading requests: one connection's ``httptools`` callbacks and what they collect.

The whole body is read before the app is called: in memory up to
``SPOOL_SIZE``, then in a temporary file (nginx's ``client_body_buffer_size``
and waitress's ``inbuf_overflow`` do the same), so a slow upload costs the
connection's coroutine, never an app thread.
"""
import io
import tempfile

from httptools import HttpRequestParser

#: A request body up to this size is kept in memory; a larger one goes to a temporary file.
SPOOL_SIZE = 1024 * 1024
#: Largest request body (waitress's ``max_request_body_size``); larger gets 413.
MAX_BODY = 1024 ** 3

_INF = float("inf")
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}

# Where the parser is in a connection's next request: between requests, in a head, in a body.
IDLE, HEAD, BODY = range(3)


class Reject(Exception):
    """Raised from a parser callback to stop parsing and answer ``status``."""

    def __init__(self, status):
        self.status = status


class RequestReader:
    """One connection's parser callbacks and its state between reads (the sweeper reads ``deadline``).

    Completed requests pile up in ``ready`` as tuples ``(method, target,
    headers, version, keep_alive, body, body_size)``; ``body`` is the
    file-like ``wsgi.input`` will be. ``state`` is the parser's place in
    the next request; ``busy`` is set while a request is being answered.
    """

    __slots__ = ("parser", "max_head", "max_body", "ready", "state", "head_size", "head_read", "head_deadline",
                 "deadline", "task", "target", "headers", "parts", "spool", "body_size", "expect",
                 "pending_continue", "outbox", "timed_out", "busy")

    def __init__(self, max_head, max_body):
        self.parser = HttpRequestParser(self)
        self.max_head = max_head
        self.max_body = max_body
        self.ready = []
        self.state = IDLE
        self.head_size = self.head_read = 0
        self.head_deadline = 0.0
        self.deadline = _INF
        self.task = None
        self.pending_continue = self.timed_out = self.busy = False
        self.outbox = None
        self.spool = None

    def on_message_begin(self):
        self.state = HEAD
        self.target = b""
        self.headers = []
        self.parts = []
        self.spool = None
        self.body_size = 0
        self.expect = False

    def on_url(self, part):
        self.target += part
        self.head_size += len(part)
        if self.head_size > self.max_head:
            raise Reject(431)

    def on_header(self, name, value):
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.max_head:
            raise Reject(431)
        n = len(name)
        if n == 14 and self.max_body is not None and name.lower() == b"content-length":
            if int(value) > self.max_body:
                raise Reject(413)
        elif n == 6 and name.lower() == b"expect" and value.lower() == b"100-continue":
            self.expect = True
        self.headers.append((name, value))

    def on_headers_complete(self):
        self.state = BODY
        self.head_size = self.head_read = 0
        self.head_deadline = 0.0
        if self.expect and self.parser.get_http_version() == "1.1":
            self.pending_continue = True

    def on_body(self, part):
        self.body_size += len(part)
        if self.max_body is not None and self.body_size > self.max_body:
            raise Reject(413)
        if self.spool is not None:
            self.spool.write(part)
        elif self.body_size > SPOOL_SIZE:
            self.spool = tempfile.TemporaryFile()
            self.spool.write(b"".join(self.parts))
            self.spool.write(part)
            self.parts = None
        else:
            self.parts.append(part)

    def on_message_complete(self):
        parser = self.parser
        method = parser.get_method()
        if self.spool is not None:
            body = self.spool
            body.seek(0)
            self.spool = None
        else:
            body = io.BytesIO(b"".join(self.parts) if self.parts else b"")
        self.state = IDLE
        self.pending_continue = False
        self.ready.append((_METHODS.get(method) or method.decode("latin-1"), self.target, self.headers,
                           parser.get_http_version(), parser.should_keep_alive(), body, self.body_size))

    def discard(self):
        """Close the bodies of requests that will not be answered (and a half-read one)."""
        for request in self.ready:
            request[5].close()
        self.ready.clear()
        if self.spool is not None:
            self.spool.close()
