"""The backends as the front sees them: one client each, and failures that name the backend.

Two kinds of client, one per way of waiting: `Backends` holds a
`rpc.ReconnectingClient` per backend for the coroutine and callback fronts
(one multiplexed connection each); `BlockingBackends` holds a
`rpc.BlockingPool` per backend for the thread-per-request front. Both
reconnect with back-off after a backend restart, and both turn what went
wrong into the front's three errors, so every style answers alike.
"""
from collections.abc import Callable
from typing import Any

from genloop import rpc
from genloop.kernel import Gen

from .backends import ROLES
from .steps import Ask

#: A front style's request handler: ``handle(query, user_id)`` answers one search (a coroutine).
Handle = Callable[[str, int], Gen[dict]]

#: Seconds a blocking call waits for its answer: a thread cannot be cancelled, so its
#: socket times out instead (the other styles are bounded by the front's request deadline).
CALL_TIMEOUT = 5.0


class BackendDown(Exception):
    """A backend is unreachable (HTTP 503)."""


class BackendFailed(Exception):
    """A backend answered with an error (HTTP 502)."""


class NotFound(LookupError):
    """A backend found nothing for what was asked (HTTP 404)."""


class _Backends:
    """The three backends, a client each (``make_client(host, port)``); names what fails."""

    def __init__(self, addresses: dict, make_client: Callable[[str, int], Any]) -> None:
        self.addresses = addresses                       # role -> (host, port)
        self.clients = {role: make_client(*address) for role, address in addresses.items()}

    def failure(self, role: str, error: Exception) -> Exception:
        """What went wrong calling ``role``, as the front reports it."""
        spec = ROLES[role]
        host, port = self.addresses[role]
        name = f"backend {spec.letter} ({spec.what}) at {host}:{port}"
        if isinstance(error, rpc.RemoteError):
            if error.type == "LookupError":
                return NotFound(error.error[1])
            return BackendFailed(f"{name} failed: {error}")
        return BackendDown(f"{name} is unavailable: {error}")

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


class Backends(_Backends):
    """For coroutines and callbacks: ``ask`` (a trap) and ``ask_cb``, one connection per backend."""

    def __init__(self, addresses: dict) -> None:
        super().__init__(addresses, rpc.ReconnectingClient)

    def start(self) -> Gen["Backends"]:
        """Connect to every backend (a trap); one that is down is retried in the background."""
        for client in self.clients.values():
            yield from client.start()
        return self

    def ask(self, ask: Ask) -> Gen[Any]:
        """Make the call ``ask`` describes; return the answer (a trap)."""
        try:
            return (yield from self.clients[ask.role].call(ask.method, *ask.args))
        except (rpc.RPCError, OSError) as e:
            raise self.failure(ask.role, e) from e

    def ask_cb(self, ask: Ask, callback: Callable[[Any, Exception | None], object]) -> None:
        """Send the call; ``callback(result, error)`` runs when the answer (or a failure) comes."""
        def translated(result, error):
            callback(result, None if error is None else self.failure(ask.role, error))
        self.clients[ask.role].call_cb(ask.method, ask.args, translated)


class BlockingBackends(_Backends):
    """For plain threads: ``ask`` blocks the calling thread; each thread connects on first use."""

    def __init__(self, addresses: dict) -> None:
        super().__init__(addresses, lambda host, port: rpc.BlockingPool(host, port, timeout=CALL_TIMEOUT))

    def ask(self, ask: Ask) -> Any:
        """Make the call ``ask`` describes; return the answer."""
        try:
            return self.clients[ask.role].call(ask.method, *ask.args)
        except (rpc.RPCError, OSError) as e:
            raise self.failure(ask.role, e) from e
