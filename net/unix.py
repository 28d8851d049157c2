"""Unix domain stream sockets: the ``path=`` form of ``serve_tcp`` and ``open_connection``.

Every stream entry point takes ``path=`` instead of ``host``/``port``
(``serve_http``, ``rpc.Server.start``, ``rpc.connect`` too); these two are
the names asyncio users look for.
"""
from typing import Any

from genloop.kernel import coroutine
from genloop.kernel.gentypes import Gen

from .stream import Stream
from .tcp import Server, open_connection, serve_tcp


@coroutine
def serve_unix(handler: Any, path: str, **options: Any) -> Gen[Server]:
    """``serve_tcp(handler, path=path, **options)``: serve on the Unix socket ``path`` (a trap).

    A stale socket file at ``path`` is replaced; the file is removed when the
    server closes. ``path`` starting with a NUL byte is Linux's abstract namespace.
    """
    return (yield from serve_tcp(handler, path=path, **options))


@coroutine
def open_unix_connection(path: str, **options: Any) -> Gen[Stream]:
    """``open_connection(path=path, **options)``: a ``Stream`` to the Unix socket ``path`` (a trap)."""
    return (yield from open_connection(path=path, **options))
