"""Demos in processes of their own: the servers `genloop bench` and the c10k demo measure.

A server measured from inside the process that loads it would share its GIL
and its memory figures with the client, so each demo under measure runs as
``genloop demo run --peer NAME ...`` in a child process (pinned to a CPU when
asked) and prints ``READY <port>`` once it listens (`measure.children`).
"""
import contextlib
import sys
from collections.abc import Iterator, Sequence

from genloop.demos.measure.children import Running, running

#: ``(demo name, its options)``
Demo = tuple[str, Sequence[str]]


def argv(name: str, options: Sequence[str]) -> list[str]:
    """The command line that runs demo ``name`` as a peer: it prints READY once it listens."""
    return [sys.executable, "-m", "genloop.demos.cli", "demo", "run", "--peer", name, *options]


@contextlib.contextmanager
def launched_together(demos: Sequence[Demo], cpu: int | None = None) -> Iterator[list[Running]]:
    """Start every ``(name, options)`` in ``demos`` at once, each in a child process; yields
    their `Running` once all listen, and stops them when the block ends."""
    with running([(name, argv(name, options)) for name, options in demos], cpu, quiet=True) as servers:
        yield servers


@contextlib.contextmanager
def launched(name: str, *options: str, cpu: int | None = None) -> Iterator[Running]:
    """Run demo ``name`` with ``options`` in a child process until the block ends; yields its `Running`."""
    with launched_together([(name, options)], cpu) as (server,):
        yield server
