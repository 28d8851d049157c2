"""The coroutine front: the handler reads like blocking code, yet waits without a thread.

Each `yield from` parks this request's task until the backend answers, and
Main serves the other requests meanwhile; a thousand requests in flight cost
a thousand small generators, not a thousand threads.
"""
from functools import partial

from genloop.kernel import Gen

from .clients import Backends, Handle
from .steps import answer, ask_products, ask_stock, ask_user


def search(backends: Backends, query: str, user_id: int) -> Gen[dict]:
    user = yield from backends.ask(ask_user(user_id))
    products = yield from backends.ask(ask_products(user, query))
    stock = yield from backends.ask(ask_stock(products))
    return answer(query, user, products, stock)


def front(addresses: dict, workers: int) -> Gen[tuple[Backends, Handle]]:
    """This style's clients and request handler (a trap); ``workers`` is not used."""
    backends = yield from Backends(addresses).start()
    return backends, partial(search, backends)
