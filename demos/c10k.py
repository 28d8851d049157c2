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
them open until Ctrl-C.
"""
import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Literal

import typer

from genloop.demos.harness import bench, launched, memory, threads
from genloop.demos.styles import STYLES

CONNECTIONS = 10_000
#: The fork server makes a process per connection: beyond this many the machine, not the
#: style, is what gets measured (and pid and memory limits come close).
FORK_MAX = 1_000
#: Files this process needs besides the connections.
FD_MARGIN = 64


@dataclass
class Held:
    style: str
    connections: int
    connected: int
    answered: int
    connect_seconds: float
    answer_seconds: float
    memory_before: int    # bytes (PSS) of the server's process tree
    memory_after: int
    threads: int          # in the server's process tree, with every connection open

    @property
    def bytes_per_connection(self) -> float:
        return (self.memory_after - self.memory_before) / max(1, self.connected)

    def summary(self) -> str:
        return (f"{self.style}: {self.answered:,} of {self.connections:,} connections answered "
                f"({self.connected:,} connected in {self.connect_seconds:.2f} s, answers in "
                f"{self.answer_seconds:.2f} s); server memory {self.memory_before / 2**20:.1f} -> "
                f"{self.memory_after / 2**20:.1f} MiB, {self.bytes_per_connection / 1024:.1f} KiB per "
                f"connection; {self.threads:,} threads")


def check(style: str, connections: int) -> None:
    """``ValueError`` for a request this demo will not make."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")
    if connections < 1:
        raise ValueError("connections must be at least 1")
    if style == "fork" and connections > FORK_MAX:
        raise ValueError(f"fork makes a process per connection: ask for at most {FORK_MAX:,}")


@contextlib.contextmanager
def hold(style: str, connections: int, *, cpu: int | None = None):
    """Start ``style``, open ``connections`` to it, ask once on each; yields a ``Held`` while they stay open."""
    check(style, connections)
    c10k = bench("c10k")
    bench("servers").raise_nofile(connections + FD_MARGIN)
    with launched(style, "--port", "0", cpu=cpu) as server:
        before = memory(server.pid)
        started = time.perf_counter()
        socks = c10k.connect_all(server.port, connections)
        try:
            connected = time.perf_counter()
            answered = c10k.request_all(socks)
            done = time.perf_counter()
            yield Held(style, connections, len(socks), answered, connected - started, done - connected,
                       before, memory(server.pid), threads(server.pid))
        finally:
            for sock in socks:
                sock.close()


def demo(echo=print,
         style: Annotated[Literal[tuple(STYLES)], typer.Option(help="The server style to load.")] = "coroutines",
         connections: Annotated[int, typer.Option("--connections", "-n", min=1,
                                                  help="Connections to open.")] = CONNECTIONS):
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
