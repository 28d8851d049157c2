"""Clients: ``connect`` (coroutines) and ``BlockingClient`` (plain threads)."""
import socket
import threading
from typing import Any

from genloop.kernel import Dispatcher, Gen, coroutine
from genloop.net import open_connection
from genloop.net.stream import READ_SIZE
from genloop.net.tls import HANDSHAKE_TIMEOUT

from .errors import ConnectionLost, RemoteError
from .peer import Peer, Registry
from .protocol import Connection, ResponseMessage


class Client(Peer):
    """The connecting end of a msgpack-rpc connection, as ``connect`` returns it.

    A ``Peer`` like the server's end (msgpack-rpc is symmetric): ``call``,
    ``call_cb``, ``notify``, ``close``, and the ``methods`` the server may
    call back.
    """


@coroutine
def connect(host: str | None = None, port: int | None = None, *, path: str | None = None,
            timeout: float | None = None, methods: Registry | None = None, dispatcher: Dispatcher | None = None,
            ssl: Any = None, server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = HANDSHAKE_TIMEOUT) -> Gen[Client]:
    """Connect to a msgpack-rpc server at ``host:port`` (or the Unix socket ``path``); a trap.

    Returns a started ``Client``. Many coroutines may share it: each ``call``
    is matched to its answer by msgid, whatever order the answers come in.
    ``methods`` lets the server call back into this client on the same
    connection. ``ssl``, ``server_hostname`` and ``ssl_handshake_timeout``
    are ``net.open_connection``'s; ``timeout`` bounds the connect.
    """
    stream = yield from open_connection(host, port, path=path, timeout=timeout, ssl=ssl,
                                        server_hostname=server_hostname,
                                        ssl_handshake_timeout=ssl_handshake_timeout)
    where = path if path is not None else f"{host}:{port}"
    peer = Client(stream, methods, dispatcher=dispatcher, name=f"rpc-client:{where}")
    return (yield from peer.start())


class BlockingClient:
    """A msgpack-rpc client for plain threads: each ``call`` blocks its thread.

    Calls are serialised by a lock (one request on the wire at a time); give
    each thread its own client for parallel calls. ``timeout`` bounds the
    connect and, unless a call gives its own, every call.
    """

    def __init__(self, host: str, port: int, *, timeout: float | None = None) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._timeout = timeout
        self._proto = Connection()
        self._lock = threading.Lock()

    def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        if timeout is None:
            timeout = self._timeout
        with self._lock:
            msgid, data = self._proto.send_request(method, args)
            self._sock.settimeout(timeout)
            try:
                self._sock.sendall(data)
                while True:
                    chunk = self._sock.recv(READ_SIZE)
                    if not chunk:
                        raise ConnectionLost(f"{method}: the server closed the connection")
                    for msg in self._proto.receive_data(chunk):
                        # One call at a time, so anything else is the late answer of a
                        # call that timed out, or a request we cannot serve: dropped,
                        # not kept (it would pile up for the life of the client).
                        if msg.__class__ is ResponseMessage and msg.msgid == msgid:
                            if msg.error is not None:
                                raise RemoteError(msg.error, method)
                            return msg.result
            except socket.timeout:
                raise TimeoutError(f"{method} timed out after {timeout} s") from None
            except (ConnectionResetError, BrokenPipeError) as e:
                raise ConnectionLost(f"{method}: {e}") from e

    def notify(self, method: str, *args: Any) -> None:
        with self._lock:
            self._sock.sendall(self._proto.send_notification(method, args))

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "BlockingClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
