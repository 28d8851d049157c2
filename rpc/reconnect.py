"""Clients that outlive their connection: a server restart costs the calls in flight, not the client.

When the connection drops, every call in flight fails at once with
``ConnectionLost`` (the ``Peer`` does that), and so does every call made while
the server is away: failing fast keeps callers from piling up behind a dead
peer. Meanwhile the client reconnects on its own, waiting longer after each
failed attempt (``Backoff``), and calls go through again as soon as the server
is back. ``ReconnectingClient`` serves coroutines (and callbacks);
``BlockingPool`` serves plain threads.
"""
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from genloop.kernel import Cancelled, Gen, coroutine, sleep, spawn

from .client import BlockingClient, connect
from .errors import ConnectionLost, RemoteError

log = logging.getLogger("genloop.rpc")

#: First wait after a failed connect; doubling from here, a server that restarts
#: in about half a second is found again within ~0.1 s of being back.
FIRST_DELAY = 0.05
#: Longest wait between two attempts, so a long outage costs one connect per second or two.
MAX_DELAY = 2.0
#: Seconds a connect may take before it counts as failed.
CONNECT_TIMEOUT = 2.0


class Backoff:
    """Exponential back-off between reconnection attempts: FIRST_DELAY, doubled up to MAX_DELAY."""

    def __init__(self, first: float = FIRST_DELAY, cap: float = MAX_DELAY, factor: float = 2.0) -> None:
        self.first, self.cap, self.factor = first, cap, factor
        self._next = first

    def next(self) -> float:
        """The delay before the next attempt (each call waits longer, up to the cap)."""
        delay, self._next = self._next, min(self.cap, self._next * self.factor)
        return delay

    def reset(self) -> None:
        """Connected again: the next outage starts from the first delay."""
        self._next = self.first


class ReconnectingClient:
    """A msgpack-rpc client for coroutines that reconnects by itself.

    ``call`` and ``call_cb`` are those of ``Client``; while the connection is
    down they fail at once with ``ConnectionLost``. ``start()`` (a trap) makes
    the first attempt before returning, so a server that is up is connected
    from the first call; a keeper task then watches the connection and, once
    it drops, reconnects with ``Backoff``. ``close()`` stops it all.
    """

    def __init__(self, host: str, port: int, *, backoff: Backoff | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.host, self.port = host, port
        self.backoff = backoff or Backoff()
        self.connect_timeout = connect_timeout
        self.peer = None          # the live Client, or None while disconnected
        self.connects = 0         # successful connections so far
        self._keeper = None
        self._closed = False

    def __repr__(self) -> str:
        state = "connected" if self.peer is not None else "disconnected"
        return f"<ReconnectingClient {self.host}:{self.port} {state}>"

    @coroutine
    def start(self) -> Gen["ReconnectingClient"]:
        """Try to connect once, then keep the connection up in the background (a trap)."""
        yield from self._attempt()
        self._keeper = yield from spawn(self._keep, name=f"rpc-reconnect:{self.host}:{self.port}")
        return self

    def _attempt(self) -> Gen[bool]:
        try:
            peer = yield from connect(self.host, self.port, timeout=self.connect_timeout)
        except (OSError, TimeoutError) as e:
            log.debug("%r: connect failed: %s", self, e)
            return False
        if self._closed:
            peer.close()
            return False
        self.peer = peer
        self.connects += 1
        self.backoff.reset()
        return True

    def _keep(self) -> Gen[None]:
        try:
            while True:
                if self.peer is not None:
                    yield from self.peer.wait_closed()
                    self.peer = None
                    log.info("%r: connection lost; reconnecting", self)
                yield from sleep(self.backoff.next())
                yield from self._attempt()
        except Cancelled:
            if self.peer is not None:
                self.peer.close()
            raise

    def _down(self, method) -> ConnectionLost:
        return ConnectionLost(f"{method}: not connected to {self.host}:{self.port} (reconnecting)")

    def call(self, method: str, *args: Any, timeout: float | None = None) -> Gen[Any]:
        """``Client.call`` on the live connection (a trap); ``ConnectionLost`` at once if there is none.

        Returns the live connection's own trap rather than wrapping it, so a
        call costs no generator frame more than on a plain ``Client``.
        """
        peer = self.peer
        if peer is None:
            raise self._down(method)
        return peer.call(method, *args, timeout=timeout)

    def call_cb(self, method: str, args: Sequence[Any],
                callback: Callable[[Any, BaseException | None], object]) -> None:
        """``Client.call_cb``; with no connection, ``callback(None, ConnectionLost)`` runs at once."""
        peer = self.peer
        if peer is None:
            callback(None, self._down(method))
        else:
            peer.call_cb(method, args, callback)

    def close(self) -> None:
        """Stop reconnecting and close the connection (calls in flight fail)."""
        self._closed = True
        if self._keeper is not None:
            self._keeper.cancel()
        elif self.peer is not None:
            self.peer.close()


class BlockingPool:
    """``BlockingClient`` connections shared by plain threads, reconnecting with back-off.

    A ``BlockingClient`` carries one call at a time, so each caller takes an
    idle connection (or opens one), calls, and puts it back. A connection that
    fails is closed, and so is every idle connection opened before the failure
    (they led to the same dead server); for the back-off delay after a failure
    no new connection is tried and calls fail at once with ``ConnectionLost``.
    Any answer ends that: the server is back.
    """

    def __init__(self, host: str, port: int, *, timeout: float | None = None,
                 backoff: Backoff | None = None) -> None:
        self.host, self.port = host, port
        self.timeout = timeout
        self.backoff = backoff or Backoff()
        self._lock = threading.Lock()
        self._idle = deque()              # (generation, client)
        self._generation = 0              # bumped by every failure
        self._answers = 0                 # answers so far
        self._retry_at = 0.0              # monotonic time before which we do not connect
        self._closed = False

    def _take(self, method):
        """``(generation, answers so far, client)``: an idle connection, else a new one."""
        with self._lock:
            while self._idle:
                generation, client = self._idle.pop()
                if generation == self._generation:
                    return generation, self._answers, client
                client.close()            # opened before a failure: presumed dead
            if time.monotonic() < self._retry_at:
                raise ConnectionLost(f"{method}: {self.host}:{self.port} is down (retrying later)")
            generation, answers = self._generation, self._answers
        try:
            return generation, answers, BlockingClient(self.host, self.port, timeout=self.timeout)
        except OSError as e:
            self._failed(generation, answers)
            raise ConnectionLost(f"{method}: cannot connect to {self.host}:{self.port}: {e}") from e

    def _failed(self, generation, answers):
        with self._lock:
            # Only the first to notice an outage opens the window, and only if no answer
            # came since its attempt began: a connect refused just before the server came
            # back must not shut out the callers it is already answering.
            if generation == self._generation and answers == self._answers:
                self._generation += 1
                self._retry_at = time.monotonic() + self.backoff.next()

    def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        """Call ``method(*args)``, blocking this thread; ``ConnectionLost`` if the server is away."""
        generation, answers, client = self._take(method)
        try:
            result = client.call(method, *args, timeout=timeout or self.timeout)
        except RemoteError:
            self._put_back(client)                 # the method failed; the connection is fine
            raise
        except (ConnectionLost, OSError) as e:     # TimeoutError and socket errors are OSErrors
            client.close()
            self._failed(generation, answers)
            if isinstance(e, ConnectionLost):
                raise
            raise ConnectionLost(f"{method}: {e}") from e
        except BaseException:
            client.close()                         # interrupted mid-call: its answer may still come
            raise
        self._put_back(client)
        return result

    def _put_back(self, client):
        """An answer came: the server is up. Stop failing fast and keep the connection."""
        with self._lock:
            self._answers += 1
            self._retry_at = 0.0
            self.backoff.reset()
            if self._closed:
                client.close()
            else:
                self._idle.append((self._generation, client))

    def close(self) -> None:
        """Close every idle connection; ones in use are closed when their call returns."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, deque()
        for _, client in idle:
            client.close()
