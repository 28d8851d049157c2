"""Socket: a non-blocking socket whose calls suspend the task, not the thread.

Every call tries the system call first and waits on the poller only on
``BlockingIOError``, so a busy connection never touches epoll. The wait traps
are built once per socket and reused. Every suspending method is a
``genloop.kernel.coroutine``: use it with ``yield from`` or ``await``.
"""
import errno
import socket as _socket
from typing import Any

from genloop.kernel import coroutine, current_kernel
from genloop.kernel.gentypes import Gen
from genloop.kernel.traps import IO, READ, WRITE


class Socket:
    """Wraps a ``socket.socket`` (made non-blocking); methods are generator functions."""

    __slots__ = ("sock", "_wait_read", "_wait_write", "_kernel", "__weakref__")

    def __init__(self, sock: _socket.socket):
        sock.setblocking(False)
        self.sock = sock
        self._wait_read = (IO, sock, READ)
        self._wait_write = (IO, sock, WRITE)
        self._kernel = current_kernel()

    @classmethod
    def tcp(cls, family=_socket.AF_INET) -> "Socket":
        return cls(_socket.socket(family, _socket.SOCK_STREAM))

    def fileno(self) -> int:
        return self.sock.fileno()

    def __repr__(self):
        return f"<Socket fd={self.sock.fileno()}>"

    @coroutine
    def accept(self) -> Gen[tuple[_socket.socket, Any]]:
        """Wait for a connection; returns ``(Socket, address)``."""
        while True:
            try:
                conn, addr = self.sock.accept()
            except BlockingIOError:
                yield self._wait_read
            else:
                return Socket(conn), addr

    @coroutine
    def connect(self, address: Any) -> Gen[None]:
        """Connect, waiting for the handshake without blocking the thread."""
        err = self.sock.connect_ex(address)
        if err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            yield self._wait_write
            err = self.sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
        if err:
            raise OSError(err, f"connect to {address}: {errno.errorcode.get(err, err)}")

    @coroutine
    def recv(self, n: int) -> Gen[bytes]:
        """Up to ``n`` bytes; ``b""`` at end of stream."""
        while True:
            try:
                return self.sock.recv(n)
            except BlockingIOError:
                yield self._wait_read

    @coroutine
    def recv_into(self, buffer: bytearray | memoryview, n: int = 0) -> Gen[int]:
        while True:
            try:
                return self.sock.recv_into(buffer, n)
            except BlockingIOError:
                yield self._wait_read

    @coroutine
    def send(self, data: bytes | bytearray | memoryview) -> Gen[int]:
        """Send some of ``data``; returns how many bytes went."""
        while True:
            try:
                return self.sock.send(data)
            except BlockingIOError:
                yield self._wait_write

    @coroutine
    def sendall(self, data: bytes | bytearray | memoryview) -> Gen[None]:
        """Send all of ``data``, waiting whenever the kernel's buffer is full."""
        sock = self.sock
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        while view:
            try:
                view = view[sock.send(view):]
            except BlockingIOError:
                yield self._wait_write

    @coroutine
    def recvfrom(self, n: int) -> Gen[tuple[bytes, Any]]:
        """One datagram of up to ``n`` bytes and its sender: ``(data, address)``."""
        while True:
            try:
                return self.sock.recvfrom(n)
            except BlockingIOError:
                yield self._wait_read

    @coroutine
    def sendto(self, data: bytes | bytearray | memoryview, address: Any) -> Gen[int]:
        """Send one datagram to ``address``, waiting while the socket's buffer is full."""
        while True:
            try:
                return self.sock.sendto(data, address)
            except BlockingIOError:
                yield self._wait_write

    def shutdown(self, how=_socket.SHUT_WR):
        try:
            self.sock.shutdown(how)
        except OSError:
            pass  # already disconnected: nothing left to shut

    def close(self) -> None:
        """Close; a task waiting on this socket gets ``ClosedResourceError``."""
        if self.sock.fileno() < 0:
            return
        kernel = current_kernel() or self._kernel
        if kernel is not None:
            kernel.forget_fd(self.sock)
        self.sock.close()

    @property
    def closed(self) -> bool:
        return self.sock.fileno() < 0
