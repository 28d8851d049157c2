"""Which kernel this thread belongs to: Main's and every worker's, set by the drivers.

A module of its own so that the core, the pools and the drivers can all read
it without importing one another.
"""
import threading

_local = threading.local()   # .kernel: the kernel whose thread this is


def current_kernel():
    """The kernel this thread belongs to (Main or one of its workers), or None."""
    return getattr(_local, "kernel", None)


def set_current_kernel(kernel) -> None:
    """Make ``kernel`` (or None) this thread's kernel."""
    _local.kernel = kernel
