"""Datagrams: ``open_datagram`` and the ``DatagramEndpoint`` it returns.

A thin layer over ``Socket.recvfrom`` / ``sendto``: each call moves one
whole datagram, waiting on the poller only while the socket has none to
give (or no room to take one). UDP loses, reorders and duplicates what it
carries; nothing here hides that.
"""
import socket as _socket
from typing import Any

from genloop.kernel import Dispatchers, coroutine, with_context
from genloop.kernel.gentypes import Gen

from .socket import Socket
from .tcp import _is_ip

#: Largest datagram ``recv`` takes by default: an IPv4 UDP payload's maximum.
MAX_DATAGRAM = 65507


class DatagramEndpoint:
    """A bound UDP socket; ``recv``/``recvfrom``/``send``/``sendto`` are traps.

    ``address`` and ``port`` are where it is bound; ``remote`` is the peer
    given to ``open_datagram``, if any (then ``send`` and ``recv`` talk to it
    only, and a refused datagram may surface as ``ConnectionRefusedError``).
    """

    def __init__(self, sock: Socket, remote=None):
        self.socket = sock
        self.remote = remote
        self.address = sock.sock.getsockname()
        self.port = self.address[1]

    def __repr__(self):
        return f"<DatagramEndpoint {self.address[0]}:{self.port}>"

    @coroutine
    def recvfrom(self, n: int = MAX_DATAGRAM) -> Gen[tuple[bytes, Any]]:
        """The next datagram (up to ``n`` bytes; the rest of a longer one is lost) and its sender."""
        return (yield from self.socket.recvfrom(n))

    @coroutine
    def recv(self, n: int = MAX_DATAGRAM) -> Gen[bytes]:
        """The next datagram's bytes (from ``remote`` when connected)."""
        return (yield from self.socket.recv(n))

    @coroutine
    def sendto(self, data: bytes, address: Any) -> Gen[int]:
        """Send ``data`` as one datagram to ``address``."""
        return (yield from self.socket.sendto(data, address))

    @coroutine
    def send(self, data: bytes) -> Gen[int]:
        """Send ``data`` as one datagram to ``remote``."""
        if self.remote is None:
            raise ValueError("this endpoint has no remote address: use sendto(data, address)")
        return (yield from self.socket.send(data))

    def close(self) -> None:
        self.socket.close()

    @property
    def closed(self) -> bool:
        return self.socket.closed


@coroutine
def open_datagram(host: str = "127.0.0.1", port: int = 0, *, remote=None, reuse_port: bool = False,
                  broadcast: bool = False) -> Gen["DatagramEndpoint"]:
    """A UDP endpoint bound to ``host:port`` (port 0 picks one); a trap.

    ``remote=(host, port)`` connects it, so ``send``/``recv`` talk to that
    peer alone. Host names are resolved on ``Dispatchers.IO``.
    """
    if remote is not None and not _is_ip(remote[0]):
        infos = yield from with_context(Dispatchers.IO, _socket.getaddrinfo, remote[0], remote[1], 0,
                                        _socket.SOCK_DGRAM)
        remote = infos[0][4]
    family = _socket.AF_INET6 if ":" in host or (remote and ":" in remote[0]) else _socket.AF_INET
    raw = _socket.socket(family, _socket.SOCK_DGRAM)
    try:
        if reuse_port:
            raw.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
        if broadcast:
            raw.setsockopt(_socket.SOL_SOCKET, _socket.SO_BROADCAST, 1)
        raw.bind((host, port))
        if remote is not None:
            raw.connect(remote)       # UDP: no handshake, so this never waits
    except BaseException:
        raw.close()
        raise
    return DatagramEndpoint(Socket(raw), remote)
