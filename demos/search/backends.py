"""The three backends the front calls in turn: user profile (A), product search (B), stock (C).

Each is a msgpack-rpc server with one method. A method sleeps the simulated
latency (the network hops and remote database the demo does not have), then
runs its query on an IO thread: SQLite blocks, and Main must not.
"""
from dataclasses import dataclass

import rpc
from kernel import Dispatchers, sleep, with_context

from .data import Catalog

#: Threads of IO that run queries at once. One: these queries take microseconds, and one
#: thread running the queued ones back to back takes the GIL from Main once per batch,
#: where many threads would each take it (and wait for it) once per query. Measured on
#: 2 cores under the search bench: 1 thread about 5,000 searches/s, 2 about 4,200, 64 about 2,700.
QUERY_THREADS = 1
QUERIES = Dispatchers.IO.limited(QUERY_THREADS)

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


def _method(query, latency: float):
    def method(*args):
        if latency:
            yield from sleep(latency)
        return (yield from with_context(QUERIES, query, *args))
    return method


def start(role: str, catalog: Catalog, host: str, port: int, latency: float = 0.0):
    """Start the ``role`` backend on ``host:port`` (a trap); returns its ``rpc.Server``."""
    spec = ROLES[role]
    server = rpc.Server(name=f"search-{role}")
    server.register(spec.method, _method(getattr(catalog, spec.query), latency))
    yield from server.start(host, port)
    return server
