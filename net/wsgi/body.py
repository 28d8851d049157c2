"""``wsgi.input``: a request body handed from the connection to the app's thread as it arrives.

The connection, a coroutine on Main, feeds what the parser gives it into a
``BodyPipe``; the app's thread reads it through an ``io.BufferedReader``
(``read(n)``, ``read()``, ``readline()``, ``readlines()``, iteration),
waiting on a ``threading.Condition`` while the pipe is empty. The pipe holds
about ``BODY_BUFFER`` bytes at most: past that the connection stops reading
the socket until the app has taken some, so a fast client and a slow app
cost a bounded buffer, never the body's size. The body ends with EOF where
its framing says, never in the next pipelined request; a body that cannot
end (the client left, stalled past ``io_timeout``, sent bad framing or more
than ``max_body``) makes the app's read raise an ``OSError``.

With ``spool_chunked`` a chunked body is read whole before its app runs
instead (``SpooledBody``), so the app gets its ``CONTENT_LENGTH``.
"""
import io
import tempfile
import threading

from genloop.kernel import Event

#: Bytes of a request body received but not yet read by the app above which
#: the connection stops reading the socket (uvicorn pauses reading a request
#: body at 64 KiB too, its ``HIGH_WATER_LIMIT``).
BODY_BUFFER = 64 * 1024
#: A spooled chunked body is kept in memory up to this size, in a temporary
#: file beyond (nginx's ``client_body_buffer_size`` and waitress's
#: ``inbuf_overflow`` do the same).
SPOOL_SIZE = 1024 * 1024


class BodyPipe(io.RawIOBase):
    """One request body between the connection (``feed``, ``finish``, ``fail``) and the app's thread (``readinto``).

    ``length`` is the body's Content-Length (None when chunked); ``received``
    counts what arrived. ``room`` is set (from the app's thread) when the
    buffer, once full, falls to half of ``limit``, so a paused connection
    then reads half a buffer before it pauses again rather than a parse
    slice per read of the app; or when the app is done with the body.
    ``ask_continue`` is called once, on the app's thread, by the first read
    that finds nothing arrived yet: the client waits for ``100 Continue``.
    After ``close()`` (the app returned) what still arrives is dropped.
    """

    def __init__(self, length: int | None, ask_continue=None, limit: int = BODY_BUFFER):
        super().__init__()
        self.length = length
        self.limit = limit
        self.received = 0
        self.done = False
        self.room = Event()
        self._ask_continue = ask_continue
        self._cond = threading.Condition(threading.Lock())
        self._buf = bytearray()
        self._error = None
        self._dropping = False

    # -- the connection's side (Main) -----------------------------------------
    @property
    def full(self) -> bool:
        return len(self._buf) >= self.limit

    @property
    def remaining(self) -> int | None:
        """Bytes still to come, if the length is known."""
        return None if self.length is None else self.length - self.received

    @property
    def held_back(self) -> bool:
        """The client waits for ``100 Continue`` before it sends the body, and the app has not asked for it."""
        return self._ask_continue is not None and not self.received

    def feed(self, data: bytes) -> None:
        with self._cond:
            self.received += len(data)
            if not self._dropping:
                self._buf += data
                self._cond.notify()

    def finish(self) -> None:
        """The body is all in: reads end with EOF once the buffer is empty."""
        with self._cond:
            self.done = True
            self._cond.notify_all()

    def fail(self, error: OSError) -> None:
        """The body will not end: reads raise ``error`` once the buffer is empty (no-op after ``finish``)."""
        with self._cond:
            if not self.done and self._error is None:
                self._error = error
                self._cond.notify_all()

    # -- the app's side (its pool thread) -------------------------------------
    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        with self._cond:
            buf = self._buf
            while not buf:
                if self._error is not None:
                    raise self._error
                if self.done:
                    return 0
                if self._ask_continue is not None and not self.received:
                    self._ask_continue()
                    self._ask_continue = None
                self._cond.wait()
            before = len(buf)
            n = min(len(b), before)
            b[:n] = buf[:n]
            del buf[:n]                         # bytearray drops its head without moving the rest
        if before > self.limit // 2 >= before - n:
            self.room.set()
        return n

    def close(self) -> None:
        """The app is done with the body: drop what is buffered and what still comes."""
        with self._cond:
            self._dropping = True
            self._buf.clear()
        self.room.set()
        super().close()


class SpooledBody:
    """A chunked body read whole before its app runs (``spool_chunked``), for apps
    that read only ``CONTENT_LENGTH`` bytes: Django's ``WSGIRequest`` sees an
    empty body without it. ``BodyPipe``'s connection side, over a temporary file.
    """

    def __init__(self):
        self.file = tempfile.SpooledTemporaryFile(SPOOL_SIZE)
        self.received = 0
        self.done = False

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        self.file.write(data)

    def finish(self) -> None:
        self.done = True
        self.file.seek(0)

    def fail(self, error: OSError) -> None:
        self.file.close()

    def close(self) -> None:
        self.file.close()
