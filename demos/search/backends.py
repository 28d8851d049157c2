"""The three backends the front calls in turn: user profile (A), product search (B), stock (C).

Each is a msgpack-rpc server with one method, which runs its query on an IO
thread: SQLite blocks, and Main must not. An option gives every call a
latency, standing for the network and the remote database the demo does not
have; the local query runs within it (a call takes the latency or its query,
whichever is longer).

A query takes SQLite microseconds; the trip to an IO thread and back costs
more (a task, two thread wake-ups, two hand-offs of the GIL). Under load
many calls want their query at once, so `Trips` sends the queries asked
for in one turn of the loop together, as a database client batches what it
sends: one trip to IO, one latency, for all of them.
"""
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from genloop import rpc
from genloop.kernel import Dispatcher, Dispatchers, Future, Gen, current_kernel, sleep, spawn, with_context

from .data import Catalog


@dataclass(frozen=True)
class Role:
    letter: str      # the article's name for it
    what: str
    method: str      # the one rpc method it serves
    query: str       # the Catalog method behind it


ROLES = {
    "user": Role("A", "user profile", "GetUserInfo", "user"),
    "product": Role("B", "product search", "SearchProducts", "search"),
    "stock": Role("C", "stock", "GetStock", "stock"),
}


def _run_all(batch) -> list:
    """On the IO thread: every query of the batch, each outcome ``(value, error)``."""
    outcomes = []
    for query, args, _ in batch:
        try:
            outcomes.append((query(*args), None))
        except Exception as e:  # noqa: BLE001 - handed to the caller that asked for it
            outcomes.append((None, e))
    return outcomes


class Trips:
    """Queries asked for in one turn of the loop go together: one ``with_context`` trip to
    IO for all of them, answered once ``latency`` has passed.

    Only tasks on Main use it (the rpc server's), so its list needs no lock.
    """

    def __init__(self, latency: float = 0.0, dispatcher: Dispatcher = Dispatchers.IO) -> None:
        self.latency = latency
        self.dispatcher = dispatcher
        self.waiting = []            # (query, args, Future) for the next trip

    def run(self, query: Callable[..., Any], *args: Any) -> Gen[Any]:
        """``query(*args)`` on an IO thread; returns its value, ``latency`` after the trip left (a trap)."""
        future = Future()
        self.waiting.append((query, args, future))
        if len(self.waiting) == 1:                     # the first of a batch books the trip
            yield from spawn(self._trip, name="search-query-trip")
        return (yield from future.wait())

    def _trip(self) -> Gen[None]:
        yield                                          # the rest of this turn's queries join in
        batch, self.waiting = self.waiting, []         # then the trip leaves: later ones wait for the next
        clock = current_kernel().clock
        due = clock.now() + self.latency
        outcomes = yield from with_context(self.dispatcher, _run_all, batch)
        if (rest := due - clock.now()) > 0:
            yield from sleep(rest)
        for (_, _, future), (value, error) in zip(batch, outcomes):
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)


def start(role: str, catalog: Catalog, host: str, port: int, latency: float = 0.0) -> Gen[rpc.Server]:
    """Start the ``role`` backend on ``host:port`` (a trap); returns its ``rpc.Server``."""
    spec = ROLES[role]
    server = rpc.Server(name=f"search-{role}")
    server.register(spec.method, partial(Trips(latency).run, getattr(catalog, spec.query)))
    yield from server.start(host, port)
    return server
