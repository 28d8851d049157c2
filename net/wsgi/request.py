"""Reading requests: ``net.http``'s parser callbacks, with the body streamed to ``wsgi.input``.

The head is parsed and checked as ``serve_http`` does (its limits, ``Host``,
the version, ``CONNECT``); what differs is the body. A request is ready as
soon as its head is parsed, so its app can start, and its body goes into a
``BodyPipe`` (see ``body``) as the parser delivers it, while the app reads.
"""
from genloop.kernel import Event
from genloop.net.http import _Connection, _Reject

from .body import BodyPipe, SpooledBody
from .response import CONTINUE, Outbox

#: Largest request body (waitress's ``max_request_body_size``). A longer
#: Content-Length gets 413 before the app runs; a chunked body that grows
#: past it makes the app's read raise, and the connection closes.
MAX_BODY = 1024 ** 3

_INF = float("inf")


class RequestReader(_Connection):
    """``net.http``'s connection state and callbacks, plus the WSGI side of a connection.

    Requests in ``ready`` are ``net.http.Request``s whose ``body`` is the
    ``BodyPipe`` of their body (None if they have none; with ``spool_chunked``,
    a chunked one is a ``SpooledBody``, ready once it is all in); ``pipe`` is
    the one the parser is filling. ``outbox`` is the hand-over from the app's thread
    (see ``response``). The read loop and a request's answer may run as two
    tasks (see ``server``): ``deadline``, which the sweeper reads, is the
    sooner of the read loop's (``HttpService`` sets it around each wait) and
    ``answer_deadline``. ``answered`` is set once the answer in flight
    (``responder``, to ``answering``) is over; ``keep`` says whether the
    connection goes on after it.
    """

    __slots__ = ("pipe", "outbox", "read_deadline", "answer_deadline", "responder", "answering", "answered",
                 "keep", "awaiting_head", "cut_body", "spool_chunked")

    def __init__(self, max_head, max_body, stream, spool_chunked=False):
        self.answer_deadline = _INF
        self.spool_chunked = spool_chunked
        super().__init__(max_head, max_body, stream)
        self.pipe = self.responder = self.answering = None
        self.answered = Event()
        self.outbox = Outbox()
        self.keep = True
        self.awaiting_head = self.cut_body = False

    @property
    def deadline(self) -> float:
        return min(self.read_deadline, self.answer_deadline)

    @deadline.setter
    def deadline(self, value: float) -> None:
        self.read_deadline = value

    def on_headers_complete(self):
        super().on_headers_complete()
        pipe = None
        if self.chunked:
            if self.spool_chunked:              # ready once it is all in (on_message_complete)
                self.pipe = SpooledBody()
                return
            length = None
        else:
            length = int(self.request.headers.get("content-length") or 0)
        if length != 0:
            pipe = self.pipe = BodyPipe(length, self.ask_continue if self.pending_continue else None)
        self.ready.append(self.take_request(pipe))

    def on_body(self, part):
        self.body_size += len(part)
        if self.max_body is not None and self.body_size > self.max_body:
            raise _Reject(413)
        self.pipe.feed(part)

    def on_message_complete(self):
        self.in_message = self.pending_continue = False
        pipe, self.pipe = self.pipe, None
        if pipe is not None:
            pipe.finish()
            if type(pipe) is SpooledBody:
                self.ready.append(self.take_request(pipe))

    def ask_continue(self):
        """From the app's thread: its first read waits for a body the client holds back until ``100 Continue``."""
        self.outbox.queue.put_nowait(CONTINUE)

    def cut(self, error: OSError):
        """The body being parsed will not end: its app's reads raise ``error``."""
        pipe, self.pipe = self.pipe, None
        if pipe is not None:
            pipe.fail(error)
