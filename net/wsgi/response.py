"""The app's side of a request, on a pool thread: ``start_response``, ``write``,
the response iterable and its ``close()``, ``wsgi.file_wrapper``.

The whole call runs on one thread, iteration included: apps keep per-request
state in thread-locals and context variables (Flask's ``stream_with_context``),
which must not change thread between two chunks. What the app produces goes
to the connection through an ``Outbox``: the connection, on the kernel, sends
it; the thread waits when more than ``OUTPUT_HIGH_WATER`` bytes are handed
over but unsent, so a client that reads slowly slows the app down instead of
filling memory.

Parts in the outbox (tuples, to keep the hot path light):

- the head: ``(code, head, length, closes, body, done)``: the status code, the
  status line and the app's header fields as bytes (Date added), the app's
  ``Content-Length`` (or None), whether it asked for ``Connection: close``,
  the body so far (a list of bytes, or a ``FileWrapper`` to send with
  sendfile) and whether the response is complete;
- then ``(body, done)`` for each further piece;
- ``None`` if the app failed: a 500 if nothing was sent yet, else the
  connection is cut so the client sees an incomplete response;
- ``CONTINUE``, at any time, from the app's first read of a body the client
  holds back until it gets ``100 Continue`` (sent unless the head went out).
"""
import logging
import os
import stat
import threading
import time
from email.utils import formatdate

from genloop.kernel import Queue

log = logging.getLogger("genloop.net.wsgi")

#: Bytes of a response handed to the connection but not yet sent, above which
#: the app's thread waits (waitress's ``outbuf_high_watermark`` is 16 MiB;
#: uvicorn pauses its transport at 64 KiB).
OUTPUT_HIGH_WATER = 1024 * 1024
#: Block size of ``wsgi.file_wrapper`` when it is read in chunks (no sendfile).
FILE_BLOCK = 64 * 1024

#: The part that asks the connection for ``100 Continue``.
CONTINUE = "100-continue"

#: Hop-by-hop fields (RFC 9110, 7.6.1) are the server's: an app must not send them (PEP 3333).
_HOP_BY_HOP = frozenset(("keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                         "trailers", "transfer-encoding", "upgrade"))


class ClientGone(Exception):
    """The connection ended before the response was sent: the app's iteration stops."""


class Outbox:
    """One connection's hand-over from the app's thread to the kernel, bounded in bytes.

    ``queue`` is a kernel ``Queue`` (``put_nowait`` works from any thread);
    the connection takes parts from it and reports each one sent with
    ``sent(size)``. ``abandon()`` (the connection is gone) makes the thread's
    next ``put`` raise ``ClientGone``.
    """

    __slots__ = ("queue", "high_water", "_cond", "_in_flight", "_abandoned")

    def __init__(self, high_water: int = OUTPUT_HIGH_WATER):
        self.queue = Queue()
        self.high_water = high_water
        self._cond = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._abandoned = False

    def put(self, part, size: int) -> None:
        """From the app's thread: hand ``part`` over, waiting while too much is unsent."""
        with self._cond:
            while self._in_flight > self.high_water and not self._abandoned:
                self._cond.wait()
            if self._abandoned:
                raise ClientGone
            self._in_flight += size
        self.queue.put_nowait(part)

    def sent(self, size: int) -> None:
        """From the connection: ``size`` bytes of what was put have gone out."""
        with self._cond:
            self._in_flight -= size
            if self._in_flight <= self.high_water:
                self._cond.notify()

    def abandon(self) -> None:
        with self._cond:
            self._abandoned = True
            self._cond.notify_all()


class FileWrapper:
    """``wsgi.file_wrapper``: a file the connection sends with ``os.sendfile`` when it
    is a regular file and the socket is plain TCP; else it is read in ``blksize`` chunks."""

    def __init__(self, filelike, blksize: int = FILE_BLOCK):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        read = self.filelike.read
        while data := read(self.blksize):
            yield data

    def sendfile_plan(self):
        """``(fd, offset, count)`` to send from the file's current position, or None."""
        try:
            fd = self.filelike.fileno()
            st = os.fstat(fd)
            offset = self.filelike.tell() if hasattr(self.filelike, "tell") else 0
        except (AttributeError, OSError, ValueError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return fd, offset, max(0, st.st_size - offset)


_date = (0, b"")


def _date_field() -> bytes:
    """The ``Date`` field, formatted once a second."""
    global _date
    now = int(time.time())
    cached = _date
    if cached[0] != now:
        cached = _date = (now, b"Date: %s\r\n" % formatdate(now, usegmt=True).encode("ascii"))
    return cached[1]


def encode_head(status: str, headers) -> tuple:
    """``(code, head, length, closes)`` of the app's status and headers (``ValueError`` if invalid)."""
    code = int(status[:3])
    if len(status) < 4 or status[3] != " " or not 100 <= code <= 999 or "\r" in status or "\n" in status:
        raise ValueError(f"status {status!r} is not 'NNN Reason' on one line")
    lines = ["HTTP/1.1 ", status, "\r\n"]
    length = None
    closes = has_date = False
    for name, value in headers:
        if "\n" in name or "\r" in name or "\n" in value or "\r" in value:
            raise ValueError(f"header {name!r} holds a line break (response splitting)")
        lower = name.lower()
        if lower == "content-length":
            length = int(value)
        elif lower == "connection":             # ours to send; "close" is honoured
            closes = closes or "close" in value.lower()
            continue
        elif lower == "date":
            has_date = True
        elif lower in _HOP_BY_HOP:
            raise ValueError(f"the app sent the hop-by-hop header {name!r} (PEP 3333 forbids it)")
        lines += (name, ": ", value, "\r\n")
    head = "".join(lines).encode("latin-1")
    return code, head if has_date else head + _date_field(), length, closes


class _Call:
    """``start_response`` and ``write`` of one request; ``sent`` once the head is handed over."""

    __slots__ = ("outbox", "status", "headers", "sent")

    def __init__(self, outbox):
        self.outbox = outbox
        self.status = None
        self.sent = False

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None                 # no cycle through the traceback (PEP 3333)
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        if type(status) is not str:
            raise TypeError(f"status must be str, got {type(status).__name__}")
        self.status, self.headers = status, headers
        return self.write

    def write(self, data):
        if type(data) is not bytes:
            raise TypeError(f"response data must be bytes, got {type(data).__name__}")
        if data:
            self._put([data], len(data), False)

    def finish(self, chunks=()):
        size = 0
        for chunk in chunks:
            if type(chunk) is not bytes:
                raise TypeError(f"response data must be bytes, got {type(chunk).__name__}")
            size += len(chunk)
        self._put(chunks, size, True)

    def _put(self, body, size, done):
        if self.sent:
            self.outbox.put((body, done), size)
            return
        if self.status is None:
            raise AssertionError("the app produced a body before calling start_response")
        code, head, length, closes = encode_head(self.status, self.headers)
        self.sent = True
        self.outbox.put((code, head, length, closes, body, done), size)


def run_app(app, environ: dict, outbox: Outbox, sendfile: bool) -> None:
    """Call ``app`` and hand everything it produces to ``outbox``; ``close()`` the result.

    Runs on a pool thread and never raises: an app's exception is logged and
    becomes a 500 (or a cut connection once the head was sent).
    """
    call = _Call(outbox)
    result = None
    try:
        result = app(environ, call.start_response)
        if sendfile and type(result) is FileWrapper and not call.sent:
            plan = result.sendfile_plan()
            if plan is not None:
                result.plan = plan
                call._put(result, 0, True)
                result = None                   # the connection sends it, then closes it
                return
        if type(result) is list or type(result) is tuple:
            call.finish(result)
        else:
            for chunk in result:
                if chunk:
                    call.write(chunk)
            call.finish()
    except ClientGone:
        pass
    except BaseException:   # noqa: BLE001 - even SystemExit: the connection waits for an answer
        log.exception("%s %s: the app failed", environ.get("REQUEST_METHOD"), environ.get("RAW_URI"))
        try:
            outbox.put(None, 0)
        except ClientGone:
            pass
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.exception("%s %s: the response's close() failed", environ.get("REQUEST_METHOD"),
                              environ.get("RAW_URI"))
