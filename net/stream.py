"""Stream: buffered reads and writes over a ``Socket``, with size limits.

Every suspending method wears ``genloop.kernel.coroutine``: ``yield from`` or ``await`` it.
"""

from genloop.kernel import coroutine
from genloop.kernel.gentypes import Gen

from .socket import Socket

#: Largest line/frame a read may buffer before giving up (asyncio's default).
DEFAULT_LIMIT = 64 * 1024
#: Bytes asked of the kernel per recv, by every reader of the package (streams, the HTTP server, rpc):
#: one call drains a typical socket buffer, many pipelined requests or ~2,000 small rpc messages.
READ_SIZE = 64 * 1024


class IncompleteRead(EOFError):
    """The stream ended before the requested bytes or separator arrived."""

    def __init__(self, partial: bytes, expected):
        self.partial = partial
        self.expected = expected
        what = f"{expected} bytes" if isinstance(expected, int) else f"separator {expected!r}"
        super().__init__(f"stream ended after {len(partial)} bytes, before {what}")


class LimitOverrun(ValueError):
    """A read needed more buffered bytes than the stream's limit allows."""


class Stream:
    """Buffered I/O on a connected ``Socket``.

    Reads return ``bytes``; each read buffers at most ``limit`` bytes and
    raises ``LimitOverrun`` beyond it, so a peer cannot make the server grow
    without bound.
    """

    __slots__ = ("socket", "limit", "_buf", "_eof", "peer")

    def __init__(self, sock: Socket, *, limit: int = DEFAULT_LIMIT, peer=None):
        self.socket = sock
        self.limit = limit
        self._buf = bytearray()
        self._eof = False
        self.peer = peer

    def __repr__(self):
        return f"<Stream peer={self.peer} buffered={len(self._buf)}>"

    @property
    def at_eof(self) -> bool:
        return self._eof and not self._buf

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def _fill(self):
        """Append one recv's worth to the buffer; False at end of stream."""
        data = yield from self.socket.recv(READ_SIZE)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _take(self, n: int) -> bytes:
        buf = self._buf
        data = bytes(buf[:n])
        del buf[:n]
        return data

    @coroutine
    def read(self, n: int = -1) -> Gen[bytes]:
        """Up to ``n`` bytes (at least one unless at EOF, then ``b""``); ``n=-1``: until EOF."""
        if n < 0:
            while not self._eof:
                if len(self._buf) > self.limit:
                    raise LimitOverrun(f"read() to EOF exceeded the {self.limit}-byte limit")
                yield from self._fill()
            return self._take(len(self._buf))
        if not self._buf and not self._eof:
            yield from self._fill()
        return self._take(min(n, len(self._buf)))

    @coroutine
    def readexactly(self, n: int) -> Gen[bytes]:
        """Exactly ``n`` bytes, or ``IncompleteRead`` carrying what arrived."""
        if n > self.limit:
            raise LimitOverrun(f"readexactly({n}) exceeds the {self.limit}-byte limit")
        while len(self._buf) < n:
            if self._eof or not (yield from self._fill()):
                raise IncompleteRead(self._take(len(self._buf)), n)
        return self._take(n)

    @coroutine
    def readuntil(self, separator: bytes = b"\n") -> Gen[bytes]:
        """Bytes up to and including ``separator``; ``IncompleteRead`` at EOF first."""
        buf = self._buf
        start = 0
        seplen = len(separator)
        while True:
            i = buf.find(separator, start)
            if i >= 0:
                return self._take(i + seplen)
            if len(buf) > self.limit:
                raise LimitOverrun(f"no {separator!r} within the {self.limit}-byte limit")
            start = max(0, len(buf) - seplen + 1)
            if self._eof or not (yield from self._fill()):
                raise IncompleteRead(self._take(len(buf)), separator)

    @coroutine
    def readline(self) -> Gen[bytes]:
        """One line including ``\\n``; at EOF the partial last line (``b""`` when none)."""
        try:
            return (yield from self.readuntil(b"\n"))
        except IncompleteRead as e:
            return e.partial

    @coroutine
    def write_all(self, data: bytes | bytearray | memoryview) -> Gen[None]:
        """Send all of ``data`` (waits while the peer is slow to read)."""
        yield from self.socket.sendall(data)

    def close(self) -> None:
        self.socket.close()
