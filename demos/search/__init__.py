"""search: the article's e-commerce search, with its front written three ways.

An HTTP front answers `GET /search?q=chair&user=42` by calling three
msgpack-rpc backends in turn — the user's profile (A: which country), the
products matching the words sold there (B), their stock (C) — and returns the
products in stock as JSON. The backends query a real SQLite database
(`data`) on IO threads and may add a simulated latency per call.

The front comes in three styles that share everything but the way they wait
for a backend (`front`, `steps`): `blocking` (a thread per request),
`callbacks` (the `handler_after_*` chain) and `coroutines` (`yield from`).
They give the same answers; `genloop bench search` shows what each costs.

By default everything runs in one process, each backend on a port of its
own. `--role user|product|stock` runs one backend alone, and
`--user-backend HOST:PORT` (and the like) points the front at one running
elsewhere: the front then starts only the backends it was not given.
"""
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from genloop.demos.options import HOST, PORT, Host, Port
from genloop.demos.serving import serve_until_interrupt
from genloop.kernel import Event, Gen, run

from . import backends, data, front
from .blocking import THREADS

ROLE_NAMES = ("all", *backends.ROLES)


def parse_address(text: str) -> tuple[str, int]:
    """``"host:port"`` -> ``(host, port)``; ``ValueError`` if it is not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def main(host: str, port: int, ready: threading.Event, stop: Event, style: str, role: str, catalog: data.Catalog,
         latency: float, given: dict, workers: int) -> Gen[None]:
    if role != "all":
        server = yield from backends.start(role, catalog, host, port, latency)
        ready.port = server.tcp.port
        ready.set()
        yield from stop.wait()
        yield from server.shutdown()
        return
    started = []
    addresses = dict(given)
    for name in backends.ROLES:
        if name not in addresses:
            server = yield from backends.start(name, catalog, host, 0, latency)
            started.append(server)
            addresses[name] = (host, server.tcp.port)
    http, clients = yield from front.start(style, addresses, host, port, workers)
    ready.port, ready.backends = http.port, addresses
    ready.set()
    yield from stop.wait()
    yield from http.shutdown()
    clients.close()
    for server in started:
        yield from server.shutdown()


def serve(host: str, port: int, *, ready: threading.Event | None = None, stop: Event | None = None,
          style: str = "coroutines", role: str = "all",
          latency: float = 0.0, db: Path | None = None, users: int = data.USERS,
          products: int = data.PRODUCTS, backends_at: dict | None = None, workers: int = THREADS) -> None:
    """The `demos.serving` entry. ``backends_at``: role -> (host, port) of backends running elsewhere."""
    if style not in front.STYLES:
        raise ValueError(f"unknown style {style!r}; choose from {sorted(front.STYLES)}")
    if role not in ROLE_NAMES:
        raise ValueError(f"unknown role {role!r}; choose from {ROLE_NAMES}")
    given = dict(backends_at or {})
    needs_data = role != "all" or len(given) < len(backends.ROLES)
    catalog = data.Catalog(data.ensure(db, users, products)) if needs_data else None
    try:
        run(main, host, port, ready or Event(), stop or Event(), style, role, catalog, latency, given, workers)
    finally:
        if catalog is not None:
            catalog.close()


def _banner(style, role):
    def banner(serving):
        if role != "all":
            spec = backends.ROLES[role]
            return [f"search backend {spec.letter} ({spec.what}): msgpack-rpc on {serving.host}:{serving.port}, "
                    f"method {spec.method}",
                    f"point a front at it:  genloop demo run search --{role}-backend {serving.host}:{serving.port}",
                    "Ctrl-C to stop"]
        where = ", ".join(f"{backends.ROLES[r].letter} ({backends.ROLES[r].what}) {h}:{p}"
                          for r, (h, p) in serving.ready.backends.items())
        return [f"search, {style} front on {serving.url}; backends: {where}",
                f"try:  curl '{serving.url}{front.EXAMPLE}'",
                "Ctrl-C to stop"]
    return banner


Address = Annotated[Optional[str], typer.Option(
    help="HOST:PORT of this backend running elsewhere (else the demo starts one).")]


def demo(echo: Callable[[str], object] = print, host: Host = HOST, port: Port = PORT,
         style: Annotated[Literal["blocking", "callbacks", "coroutines"], typer.Option(
             help="How the front waits for the backends.")] = "coroutines",
         role: Annotated[Literal[ROLE_NAMES], typer.Option(
             help="all: the front (and the backends it is not given); or one backend alone.")] = "all",
         latency: Annotated[float, typer.Option(min=0, help="Seconds each backend call sleeps, "
                                                "standing for the network (the benchmark uses 0.01).")] = 0.0,
         workers: Annotated[int, typer.Option(min=1, help="Threads of the blocking front.")] = THREADS,
         db: Annotated[Optional[Path], typer.Option(
             help="The SQLite file (generated if missing); default: in the user's cache folder.")] = None,
         users: Annotated[int, typer.Option(min=1, help="Users to generate.")] = data.USERS,
         products: Annotated[int, typer.Option(min=1, help="Products to generate.")] = data.PRODUCTS,
         user_backend: Address = None, product_backend: Address = None, stock_backend: Address = None) -> None:
    given = {}
    for name, text in (("user", user_backend), ("product", product_backend), ("stock", stock_backend)):
        if text is not None:
            try:
                given[name] = parse_address(text)
            except ValueError as e:
                raise typer.BadParameter(str(e), param_hint=f"--{name}-backend") from None
    serve_until_interrupt(serve, host, port, echo=echo, banner=_banner(style, role), style=style, role=role,
                          latency=latency, db=db, users=users, products=products, backends_at=given,
                          workers=workers)
