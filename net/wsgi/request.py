"""Reading requests: ``net.http``'s parser callbacks, with the body kept for ``wsgi.input``.

The head is parsed and checked as ``serve_http`` does (its limits, ``Host``,
the version, ``CONNECT``); what differs is the body. It is read whole before
the app is called: in memory up to ``SPOOL_SIZE``, then in a temporary file
(nginx's ``client_body_buffer_size`` and waitress's ``inbuf_overflow`` do the
same), so a slow upload costs the connection's coroutine, never an app thread.
"""
import io
import tempfile

from genloop.net.http import _Connection

#: A request body up to this size is kept in memory; a larger one goes to a temporary file.
SPOOL_SIZE = 1024 * 1024
#: Largest request body (waitress's ``max_request_body_size``); larger gets 413.
MAX_BODY = 1024 ** 3


class RequestReader(_Connection):
    """``net.http``'s connection state and callbacks, plus the WSGI side of a connection.

    Completed requests in ``ready`` are ``net.http.Request``s whose ``body``
    is the file-like ``wsgi.input`` (a ``BytesIO``, or the temporary file the
    body was spooled to). ``outbox`` is the hand-over from the app's thread
    (see ``response``).
    """

    __slots__ = ("spool", "outbox")

    def __init__(self, max_head, max_body, stream):
        super().__init__(max_head, max_body, stream)
        self.spool = self.outbox = None

    def on_body(self, part):
        super().on_body(part)                   # counted against max_body, kept in self.body
        if self.body_size > SPOOL_SIZE:
            if self.spool is None:
                self.spool = tempfile.TemporaryFile()
            self.spool.writelines(self.body)
            self.body = None

    def on_message_complete(self):
        spool, self.spool = self.spool, None
        super().on_message_complete()
        request = self.ready[-1]
        if spool is not None:
            spool.seek(0)
            request.body = spool
        else:
            request.body = io.BytesIO(request.body)

    def discard(self):
        """Close the bodies of requests that will not be answered (and a half-read one)."""
        for request in self.ready:
            request.body.close()
        self.ready.clear()
        if self.spool is not None:
            self.spool.close()
