"""genloop's kernel: generator coroutines on dispatchers, timers and an epoll poller.

See ``run`` to start, and the README for a tour.
"""
from .awaitable import coroutine
from .clock import MonotonicClock, VirtualClock
from .dispatchers import Dispatcher, Dispatchers
from .errors import BusyResourceError, Cancelled, ClosedResourceError, QueueClosed, QueueEmpty, QueueFull, Timeout
from .gentypes import Gen
from .instruments import Instrument
from .runner import current_kernel, notify_closing, run
from .signals import SignalReceiver, Terminated, on_stop, request_stop, signal_receiver, stopping
from .structured import TaskGroup, gather
from .sync import Event, Future, Lock, Queue, Semaphore
from .task import Task
from .tracer import ChromeTracer
from .traps import (
                     checkpoint,
                     current_task,
                     park,
                     sleep,
                     spawn,
                     switch_to,
                     timeout_after,
                     wait_readable,
                     wait_writable,
                     with_context,
)

__all__ = [
    "run", "spawn", "Task", "sleep", "checkpoint", "current_task", "wait_readable",
    "wait_writable", "with_context", "switch_to", "timeout_after", "Timeout", "gather",
    "TaskGroup", "Cancelled", "Event", "Lock", "Semaphore", "Queue", "QueueClosed",
    "QueueEmpty", "QueueFull", "Future", "Dispatcher", "Dispatchers", "MonotonicClock",
    "VirtualClock", "Instrument", "ClosedResourceError", "BusyResourceError", "park",
    "notify_closing", "current_kernel", "ChromeTracer", "Gen", "coroutine",
    "signal_receiver", "SignalReceiver", "stopping", "request_stop", "on_stop", "Terminated",
]
