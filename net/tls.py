"""TLS over a non-blocking socket, through ``ssl.MemoryBIO``.

Why a BIO pair rather than a non-blocking ``ssl.SSLSocket``: with the BIO
pair the TLS engine never touches the socket. This module makes every system
call itself, so each wait is for what the raw socket really lacks (bytes to
read, room to write), as asyncio's and trio's TLS do. A non-blocking
SSLSocket may need to write in the middle of a read (and read in the middle
of a write), and it holds decrypted bytes that epoll cannot see: an
edge-triggered poller would sleep on them. A handshake, a read or a close
never blocks the thread; the handshake's CPU work (about a millisecond) runs
where the connection runs.

``TLSTransport`` looks like a ``socket.socket`` whose ``recv`` and ``send``
raise ``BlockingIOError`` exactly when the raw socket would block, so
``Socket``, ``Stream`` and the HTTP loop run over it unchanged. A ``recv``
shorter than asked means the raw socket was found empty, as with plain TCP.
"""
import errno
import socket as _socket
import ssl
import threading

from genloop.kernel import coroutine, timeout_after

from .socket import Socket

#: Seconds a handshake may take before the connection is dropped (asyncio's
#: ``ssl_handshake_timeout`` default is 60 s; a silent client holds no more).
HANDSHAKE_TIMEOUT = 60.0
#: Ciphertext bytes asked of the kernel per raw recv.
RAW_READ = 64 * 1024
#: Plaintext encrypted per ``send``: bounds the ciphertext held for a slow reader.
SEND_CHUNK = 256 * 1024

def _blocked():
    return BlockingIOError(errno.EAGAIN, "the socket would block")


class TLSTransport:
    """A ``socket.socket`` look-alike speaking TLS over the non-blocking socket ``raw``.

    ``ssl_object`` is the ``ssl.SSLObject`` (``version()``, ``cipher()``,
    ``getpeercert()``, ``selected_alpn_protocol()``). A ``send`` that raises
    ``BlockingIOError`` after encrypting must be retried with data that starts
    with the same bytes (the remainder the caller still holds), as OpenSSL's
    ``SSL_write`` asks; ``Socket.sendall`` and the HTTP loop do. One lock
    guards the engine: OpenSSL objects must not be used from two threads at
    once, and a reader and a writer task may run on two worker threads.
    """

    __slots__ = ("raw", "ssl_object", "_in", "_out", "_owed", "_ahead", "_eof", "_ready", "_lock")

    def __init__(self, raw: _socket.socket, context: ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | None = None):
        self.raw = raw
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(self._in, self._out, server_side=server_side,
                                           server_hostname=server_hostname)
        self._owed = b""        # ciphertext the raw socket has not taken yet
        self._ahead = 0         # plaintext bytes encrypted into _owed, reported as not sent
        self._eof = False       # the raw socket reached its end
        self._ready = False     # the handshake is done
        self._lock = threading.Lock()

    def __repr__(self):
        return f"<TLSTransport fd={self.raw.fileno()}>"

    # -- the socket.socket face ---------------------------------------------
    @property
    def family(self):
        return self.raw.family

    @property
    def type(self):
        return self.raw.type

    def fileno(self) -> int:
        return self.raw.fileno()

    def setblocking(self, flag: bool) -> None:
        if flag:
            raise ValueError("a TLSTransport works on a non-blocking socket only")
        self.raw.setblocking(False)

    def getsockname(self):
        return self.raw.getsockname()

    def getpeername(self):
        return self.raw.getpeername()

    def setsockopt(self, *args):
        return self.raw.setsockopt(*args)

    def getsockopt(self, *args):
        return self.raw.getsockopt(*args)

    # -- reading -------------------------------------------------------------
    def recv(self, n: int, flags: int = 0) -> bytes:
        """Up to ``n`` decrypted bytes; ``b""`` at the end; ``BlockingIOError`` if none yet."""
        with self._lock:
            chunks = []
            size = 0
            drained = False             # a raw recv found the socket empty during this call
            obj, incoming = self.ssl_object, self._in
            while size < n:
                if incoming.pending or self._eof or obj.pending():
                    try:
                        data = obj.read(n - size)
                    except ssl.SSLWantReadError:
                        if self._eof:
                            break
                    except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                        break               # close_notify, or a cut without it (as SSLSocket's ragged EOF)
                    else:
                        if not data:
                            break
                        chunks.append(data)
                        size += len(data)
                        continue
                if self._out.pending or self._owed:
                    self._push_quietly()    # a read may answer the peer (key update, session ticket)
                if drained:
                    if chunks:
                        break
                    raise _blocked()
                try:
                    raw = self.raw.recv(RAW_READ)
                except BlockingIOError:
                    if chunks:
                        break
                    raise
                if raw:
                    incoming.write(raw)
                    drained = len(raw) < RAW_READ
                else:
                    incoming.write_eof()
                    self._eof = True
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def recv_into(self, buffer, n: int = 0, flags: int = 0) -> int:
        data = self.recv(n or len(buffer))
        buffer[:len(data)] = data
        return len(data)

    # -- writing -------------------------------------------------------------
    def send(self, data, flags: int = 0) -> int:
        """Encrypt and send some of ``data``; returns how many plaintext bytes went."""
        with self._lock:
            if self._owed:
                self._push()                # BlockingIOError while the raw socket is full
            if self._ahead:                 # the retry of a send whose ciphertext just went out
                n, self._ahead = self._ahead, 0
                return n
            n = min(len(data), SEND_CHUNK)
            self.ssl_object.write(data if n == len(data) else memoryview(data)[:n])
            self._owed = self._out.read()
            try:
                self._push()
            except BlockingIOError:
                self._ahead = n
                raise
            return n

    def _push(self) -> None:
        """Send owed ciphertext; ``BlockingIOError`` if the raw socket did not take it all."""
        if self._out.pending:
            self._owed = bytes(self._owed) + self._out.read()
        owed = self._owed
        sent = self.raw.send(owed)
        self._owed = memoryview(owed)[sent:] if sent < len(owed) else b""
        if self._owed:
            raise _blocked()

    def _push_quietly(self) -> None:
        try:
            self._push()
        except OSError:
            pass                # full or broken: the next send waits for room, or reports it

    # -- the handshake and the end ------------------------------------------
    @coroutine
    def handshake(self, waits: Socket):
        """Run the handshake, waiting through ``waits`` (the ``Socket`` over this transport)."""
        obj = self.ssl_object
        while True:
            try:
                obj.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            while self._out.pending or self._owed:
                try:
                    self._push()
                except BlockingIOError:
                    yield waits._wait_write
            if done:
                self._ready = True
                return
            try:
                raw = self.raw.recv(RAW_READ)
            except BlockingIOError:
                yield waits._wait_read
                continue
            if raw:
                self._in.write(raw)
            else:
                self._in.write_eof()     # the next do_handshake raises SSLEOFError

    def _close_notify(self) -> None:
        """Queue TLS's close_notify and send what the socket takes now (never waits)."""
        if not self._ready:
            return
        self._ready = False
        try:
            self.ssl_object.unwrap()
        except (ssl.SSLError, ValueError):
            pass                # SSLWantReadError: the peer's close_notify is not awaited
        self._push_quietly()

    def shutdown(self, how=_socket.SHUT_WR) -> None:
        with self._lock:
            if how != _socket.SHUT_RD:
                self._close_notify()
        self.raw.shutdown(how)

    def close(self) -> None:
        with self._lock:
            if self.raw.fileno() >= 0:
                self._close_notify()
        self.raw.close()


@coroutine
def start_tls(sock, context: ssl.SSLContext, *, server_side: bool = False, server_hostname: str | None = None,
              timeout: float | None = HANDSHAKE_TIMEOUT) -> Socket:
    """TLS on the connected ``sock`` (a ``Socket`` or ``socket.socket``): a trap.

    Runs the handshake (``Timeout`` past ``timeout`` s; an ``ssl.SSLError``
    such as ``SSLCertVerificationError`` when it fails) and returns a new
    ``Socket`` that speaks TLS; use that one from now on.
    """
    transport = TLSTransport(getattr(sock, "sock", sock), context, server_side=server_side,
                             server_hostname=server_hostname)
    tls = Socket(transport)
    if timeout is None:
        yield from transport.handshake(tls)
    else:
        yield from timeout_after(timeout, transport.handshake, tls)
    return tls
