"""The callback front: the article's ``handler_after_*`` chain.

No thread waits and no task is parked: each call names the function to run
when its answer comes, and that function makes the next call. It is as
economical as coroutines, but the one sequence of three calls is cut in
three, what one step needs from an earlier one travels by hand, and every
step repeats the error check.
"""
from collections.abc import Callable
from typing import Any

from genloop.kernel import Future, Gen

from .clients import Backends, Handle
from .steps import answer, ask_products, ask_stock, ask_user


def search(backends: Backends, query: str, user_id: int, done: Callable[[Any, Exception | None], object]) -> None:
    """Start the search; ``done(result, error)`` runs when it is over."""

    def handler_after_user(user, error):
        if error is not None:
            return done(None, error)
        backends.ask_cb(ask_products(user, query),
                        lambda products, error: handler_after_products(user, products, error))

    def handler_after_products(user, products, error):
        if error is not None:
            return done(None, error)
        backends.ask_cb(ask_stock(products),
                        lambda stock, error: handler_after_stock(user, products, stock, error))

    def handler_after_stock(user, products, stock, error):
        if error is not None:
            return done(None, error)
        done(answer(query, user, products, stock), None)

    backends.ask_cb(ask_user(user_id), handler_after_user)


def front(addresses: dict, workers: int) -> Gen[tuple[Backends, Handle]]:
    """This style's clients and request handler (a trap); ``workers`` is not used.

    The HTTP server wants a coroutine, so the handler parks on a ``Future``
    that the last callback completes.
    """
    backends = yield from Backends(addresses).start()

    def handle(query: str, user_id: int) -> Gen[dict]:
        future = Future()

        def done(result, error):
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

        search(backends, query, user_id, done)
        return (yield from future.wait())

    return backends, handle
