"""How a connection's bytes travel (plain TCP or TLS), and Unix-socket listeners.

Both are stand-ins, kept here until ``net`` grows ``ssl=`` on ``serve_tcp``
and ``serve_unix``; the WSGI server only needs a transport's ``recv``,
``send`` and ``flush`` and a ``Server`` whose listener it made.
"""
import os
import socket as _socket
import ssl
import stat

from genloop.net.tcp import Server

#: Plaintext bytes encrypted per ``send`` on TLS (a TLS record holds 16 KiB).
TLS_WRITE = 64 * 1024


class Plain:
    """The socket itself: ``recv`` and ``send`` are its own methods, raising ``BlockingIOError``."""

    __slots__ = ("recv", "send")
    #: A short read means the socket was drained (the poller is edge-triggered).
    drains = True
    sendfile = True

    def __init__(self, sock: _socket.socket):
        self.recv = sock.recv
        self.send = sock.send

    def flush(self) -> bool:
        return True


class Tls:
    """TLS in memory (``ssl.MemoryBIO``) over a non-blocking socket, so no call ever blocks Main.

    ``recv`` returns plaintext, or raises ``BlockingIOError`` only once the
    socket itself said so, as the edge-triggered poller needs; ``send``
    encrypts and sends what it can; ``flush`` says whether every encrypted
    byte went out (else wait until writable and call it again).
    """

    __slots__ = ("sock", "incoming", "outgoing", "obj", "out", "handshaken")
    drains = False
    sendfile = False

    def __init__(self, sock: _socket.socket, context: ssl.SSLContext):
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.out = b""
        self.handshaken = False

    def recv(self, n: int) -> bytes:
        while True:
            if not self.handshaken:
                try:
                    self.obj.do_handshake()
                    self.handshaken = True
                except ssl.SSLWantReadError:
                    pass
                self.flush()
            if self.handshaken:
                try:
                    return self.obj.read(n)
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLZeroReturnError:    # the client's close_notify
                    return b""
            data = self.sock.recv(n)              # BlockingIOError: drained, wait for the next edge
            if not data:
                return b""
            self.incoming.write(data)

    def send(self, data) -> int:
        if not self.flush():
            raise BlockingIOError
        n = self.obj.write(data[:TLS_WRITE])
        self.flush()
        return n

    def flush(self) -> bool:
        pending = self.outgoing.read()
        if pending:
            self.out = self.out + pending if self.out else pending
        while self.out:
            try:
                sent = self.sock.send(self.out)
            except BlockingIOError:
                return False
            self.out = self.out[sent:]
        return True


def bind_unix(path: str, backlog: int) -> _socket.socket:
    """A listening Unix socket at ``path``; a stale socket file there is replaced, any other file is not."""
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


class UnixServer(Server):
    """A ``Server`` on a Unix-socket listener, whose clients have no address; it removes its socket file when closed."""

    def __init__(self, handler, listener, path: str, **kwargs):
        super().__init__(handler, listener, **kwargs)
        self.path = path

    def __repr__(self):
        return f"<Server {self.name} on unix:{self.path}>"

    def _accept(self):
        conn, _ = yield from super()._accept()
        return conn, ("", 0)

    def close(self) -> None:
        if not self._closed.is_set():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        super().close()
