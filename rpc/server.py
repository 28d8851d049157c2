"""The msgpack-rpc server: methods in a ``Registry``, one ``Peer`` per connection."""
from collections.abc import Callable
from typing import Any

from genloop import net
from genloop.kernel import Dispatcher, Gen, coroutine, gather
from genloop.kernel.signals import STOP_GRACE

from .peer import MAX_IN_FLIGHT, Peer, Registry


class Server:
    """Serve registered methods to every client that connects.

    Requests on one connection run concurrently and their answers leave as
    they finish, out of order; a failing method becomes an error response and
    the server goes on. ``max_in_flight`` bounds the requests each
    connection runs in tasks at once (see ``Peer``). At a graceful stop
    (SIGTERM) it runs ``shutdown(stop_grace)``.
    """

    def __init__(self, *, dispatcher: Dispatcher | None = None, name: str = "rpc",
                 max_in_flight: int = MAX_IN_FLIGHT, stop_grace: float = STOP_GRACE) -> None:
        self.methods = Registry()
        self.dispatcher = dispatcher
        self.max_in_flight = max_in_flight
        self.name = name
        self.stop_grace = stop_grace
        self.tcp = None
        self.peers = set()

    def register(self, name: str, fn: Callable | None = None, *, blocking: bool = False,
                 with_peer: bool = False) -> Any:
        """See ``Registry.register``; also usable as a decorator."""
        return self.methods.register(name, fn, blocking=blocking, with_peer=with_peer)

    method = register

    def _connection(self, stream):
        peer = Peer(stream, self.methods, dispatcher=self.dispatcher, name=f"{self.name}-peer",
                    max_in_flight=self.max_in_flight)
        self.peers.add(peer)
        try:
            yield from peer.start()
            yield from peer.wait_closed()
        finally:
            self.peers.discard(peer)
            peer.close()

    @coroutine
    def start(self, host: str = "127.0.0.1", port: int = 0, **tcp_options: Any) -> Gen[net.Server]:
        """Listen and start serving (a trap); returns the ``net.Server`` (``.port``).

        ``tcp_options`` are ``net.serve_tcp``'s: ``path=`` for a Unix socket,
        ``ssl=`` for TLS, ``max_connections``, ``reuse_port``...
        """
        self.tcp = yield from net.serve_tcp(self._connection, host, port, dispatcher=self.dispatcher,
                                            name=self.name, stop_grace=self.stop_grace, **tcp_options)
        self.tcp.graceful = self.shutdown        # a graceful stop drains the calls, not just the sockets
        return self.tcp

    @coroutine
    def serve(self, host: str = "127.0.0.1", port: int = 0, **tcp_options: Any) -> Gen[None]:
        """Start, then serve until cancelled or stopped."""
        server = yield from self.start(host, port, **tcp_options)
        yield from server.serve_forever()

    @coroutine
    def shutdown(self, grace: float = 0.0) -> Gen[None]:
        """Stop accepting; let calls in flight finish and be answered for up to ``grace`` seconds,
        then close every connection."""
        if self.tcp is not None:
            yield from self.tcp.shutdown(grace, drain=self._drain)

    def _drain(self):
        yield from gather(*[peer.drain() for peer in list(self.peers)])
