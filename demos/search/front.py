"""The HTTP front, the same for every style: `GET /search?q=...&user=...` answered in JSON.

It parses the request, runs the style's handler under one deadline, and maps
what went wrong to a status: 400 for a bad query, 404 for an unknown user,
503 naming the backend that is down, 502 for one that failed, 504 past the
deadline. Only the handler (`blocking`, `callbacks`, `coroutines`) differs.
"""
import json
from collections.abc import Callable

from genloop.kernel import Gen, Timeout, timeout_after
from genloop.net import Request, Server
from genloop.net.http import Response, serve_http

from . import blocking, callbacks, coroutines
from .clients import BackendDown, BackendFailed, Backends, BlockingBackends, Handle, NotFound

STYLES = {"blocking": blocking, "callbacks": callbacks, "coroutines": coroutines}
#: Seconds one search may take, its three calls together, before the front answers 504.
REQUEST_TIMEOUT = 10.0
EXAMPLE = "/search?q=chair&user=42"
_JSON = (("Content-Type", "application/json"),)


def _json(status: int, body) -> Response:
    return Response(status, json.dumps(body).encode(), _JSON)


def parse(params: dict) -> tuple[str, int]:
    """``(query, user id)`` from the query string; ``ValueError`` saying what is wrong."""
    query = params.get("q", "").strip()
    if not query:
        raise ValueError("missing q: the words to search for")
    try:
        user_id = int(params.get("user", ""))
    except ValueError:
        raise ValueError("user must be a user id (an integer)") from None
    return query, user_id


def app_for(handle: Handle) -> Callable[[Request], Gen[Response]]:
    """The HTTP app around ``handle(query, user_id)``, a style's handler."""
    def app(request: Request) -> Gen[Response]:
        if request.path != "/search":
            return _json(404, {"error": f"nothing here; try GET {EXAMPLE}"})
        if request.method not in ("GET", "HEAD"):
            return _json(405, {"error": "only GET"})
        try:
            query, user_id = parse(request.params)
        except ValueError as e:
            return _json(400, {"error": str(e)})
        try:
            found = yield from timeout_after(REQUEST_TIMEOUT, handle, query, user_id)
        except NotFound as e:
            return _json(404, {"error": str(e)})
        except BackendDown as e:
            return _json(503, {"error": str(e)})
        except BackendFailed as e:
            return _json(502, {"error": str(e)})
        except Timeout:
            return _json(504, {"error": f"no answer within {REQUEST_TIMEOUT} s"})
        return _json(200, found)
    return app


def start(style: str, addresses: dict, host: str, port: int, workers: int) -> Gen[tuple[Server, Backends | BlockingBackends]]:
    """Start the ``style`` front on ``host:port`` (a trap); returns ``(http server, backends)``."""
    backends, handle = yield from STYLES[style].front(addresses, workers)
    server = yield from serve_http(app_for(handle), host, port)
    return server, backends
