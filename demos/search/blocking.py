"""The blocking front: a thread per request, as servlet containers do it.

The handler is plain code: each call blocks its thread until the backend
answers. A pool of threads (64 by default) runs handlers, so at most that many
requests are in flight; the rest queue, however idle the threads are while
they wait. Raising the pool buys concurrency with a stack and a context switch
per thread.
"""
from genloop.kernel import Dispatcher, Gen, with_context

from .clients import BlockingBackends, Handle
from .steps import answer, ask_products, ask_stock, ask_user

#: Threads serving requests: the size the article's benchmark gives the blocking front.
THREADS = 64


def search(backends: BlockingBackends, query: str, user_id: int) -> dict:
    user = backends.ask(ask_user(user_id))
    products = backends.ask(ask_products(user, query))
    stock = backends.ask(ask_stock(products))
    return answer(query, user, products, stock)


def front(addresses: dict, workers: int) -> Gen[tuple[BlockingBackends, Handle]]:
    """This style's clients and request handler: ``workers`` threads each run one request at a time."""
    backends = BlockingBackends(addresses)
    pool = Dispatcher("search-requests", threads=workers)

    def handle(query: str, user_id: int) -> Gen[dict]:
        return (yield from with_context(pool, search, backends, query, user_id))

    return backends, handle
    yield  # pragma: no cover - a trap like the other styles' front(), with nothing to wait for
