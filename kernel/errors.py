"""The kernel's exceptions."""


class Cancelled(BaseException):
    """Thrown into a task at a suspension point when it is cancelled.

    A BaseException, like asyncio's CancelledError and trio's Cancelled, so a
    broad ``except Exception`` in user code does not swallow it by accident.
    """


class Timeout(TimeoutError):
    """Raised by ``timeout_after`` when the deadline passes first."""


class QueueClosed(Exception):
    """``get`` on a closed, empty ``Queue`` or ``put`` on a closed one."""


class QueueEmpty(Exception):
    """``get_nowait`` on an empty ``Queue``."""


class QueueFull(Exception):
    """``put_nowait`` on a full ``Queue``."""


class ClosedResourceError(OSError):
    """The file descriptor a task was waiting on was closed under it."""


class BusyResourceError(RuntimeError):
    """Two tasks tried to wait for the same readiness of one file descriptor."""
