"""genloop: a coroutine kernel in pure Python whose coroutines are plain generators.

This is the front door: the kernel's API (``from genloop import run, spawn,
sleep, Dispatchers, TaskGroup, ...``). Below it sit ``genloop.kernel`` (the
same names and the kernel's parts), ``genloop.net`` (sockets, streams, TCP and
HTTP servers), ``genloop.rpc`` (msgpack-rpc) and ``genloop.demos`` (the CLI
and the teaching demos).
"""
from genloop.kernel import *  # noqa: F403 - the kernel's API is the package's
from genloop.kernel import __all__ as _kernel_all

__version__ = "0.2.0"

__all__ = [*_kernel_all, "__version__"]
