"""c10k: hold N connections open on one server and see what each one costs, style by style.

Dan Kegel's C10K problem (1999): ten thousand clients at once on one
machine. Idle clients cost a process each in the fork server, a thread (and
its stack) each in the thread server, and only a socket and a small record
each in the event loop, the reactor and on genloop, where a connection is a
parked generator.

The chosen style runs in a process of its own; this process opens N
connections from one epoll loop, sends one GET on each, waits for every
answer, and reports how many were answered and the server's memory per
connection (PSS: pages shared with forked children counted once), then holds
them open until Ctrl-C (`measure.hold`).
"""
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Annotated, Literal

import typer

from genloop.demos.harness import launched
from genloop.demos.measure import hold as holding
from genloop.demos.measure.children import FD_MARGIN, raise_nofile
from genloop.demos.measure.hold import Held
from genloop.demos.styles import STYLES

CONNECTIONS = 10_000
#: The fork server makes a process per connection: beyond this many the machine, not the
#: style, is what gets measured (and pid and memory limits come close).
FORK_MAX = 1_000


def check(style: str, connections: int) -> None:
    """``ValueError`` for a request this demo will not make."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")
    if connections < 1:
        raise ValueError("connections must be at least 1")
    if style == "fork" and connections > FORK_MAX:
        raise ValueError(f"fork makes a process per connection: ask for at most {FORK_MAX:,}")


@contextlib.contextmanager
def hold(style: str, connections: int, *, cpu: int | None = None) -> Iterator[Held]:
    """Start ``style``, open ``connections`` to it, ask once on each; yields a `Held` while they stay open."""
    check(style, connections)
    raise_nofile(connections + FD_MARGIN)
    with launched(style, "--port", "0", cpu=cpu) as server, holding.hold(server, connections) as held:
        yield held


def demo(echo: Callable[[str], object] = print,
         style: Annotated[Literal[tuple(STYLES)], typer.Option(help="The server style to load.")] = "coroutines",
         connections: Annotated[int, typer.Option("--connections", "-n", min=1,
                                                  help="Connections to open.")] = CONNECTIONS) -> None:
    try:
        check(style, connections)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    echo(f"starting the {style} server and opening {connections:,} connections to it...")
    try:
        with hold(style, connections) as held:
            echo(held.summary())
            echo("holding them open; Ctrl-C to close them and stop the server")
            threading.Event().wait()
    except KeyboardInterrupt:
        echo("closed")
