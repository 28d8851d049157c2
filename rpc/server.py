"""The msgpack-rpc server: methods in a ``Registry``, one ``Peer`` per connection."""
from collections.abc import Callable
from typing import Any

from genloop import net
from genloop.kernel import Dispatcher, Gen

from .peer import MAX_IN_FLIGHT, Peer, Registry


class Server:
    """Serve registered methods to every client that connects.

    Requests on one connection run concurrently and their answers leave as
    they finish, out of order; a failing method becomes an error response and
    the server goes on. ``max_in_flight`` bounds the requests each
    connection runs in tasks at once (see ``Peer``).
    """

    def __init__(self, *, dispatcher: Dispatcher | None = None, name: str = "rpc",
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.methods = Registry()
        self.dispatcher = dispatcher
        self.max_in_flight = max_in_flight
        self.name = name
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

    def start(self, host: str = "127.0.0.1", port: int = 0, **tcp_options: Any) -> Gen[net.Server]:
        """Listen and start serving (a trap); returns the ``net.Server`` (``.port``)."""
        self.tcp = yield from net.serve_tcp(self._connection, host, port, dispatcher=self.dispatcher,
                                            name=self.name, **tcp_options)
        return self.tcp

    def serve(self, host: str = "127.0.0.1", port: int = 0, **tcp_options: Any) -> Gen[None]:
        """Start, then serve until cancelled."""
        server = yield from self.start(host, port, **tcp_options)
        yield from server.serve_forever()

    def shutdown(self, grace: float = 0.0) -> Gen[None]:
        """Stop accepting; let calls finish for ``grace`` seconds, then close every connection."""
        if self.tcp is not None:
            yield from self.tcp.shutdown(grace)
