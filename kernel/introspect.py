"""Looking at tasks from outside: what a trap means in words, where a task waits.

Shared by the stepper, the monitor and the tracers, so they all say the same.
"""
import gc
import linecache
import os
import sys

from .task import WAITING
from .traps import CALL, CURRENT, IO, JOIN, PARK, READ, SLEEP, SPAWN, SWITCH

_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def current_frames() -> dict:
    """``sys._current_frames()``, with the collector held off meanwhile on CPython 3.11.

    There the call creates objects while it holds the runtime's thread-list
    lock; a collection they start may free an object whose finalizer takes
    that lock again, and the whole process hangs (CPython gh-106883, fixed in
    3.12 by this same hold-off inside the call).
    """
    if sys.version_info >= (3, 12):
        return sys._current_frames()
    enabled = gc.isenabled()
    gc.disable()
    try:
        return sys._current_frames()
    finally:
        if enabled:
            gc.enable()


def _fn_name(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def describe(trap) -> str:
    """What a task asked the kernel for, in words ("sleeps 0.5 s").

    Every trap carries what this needs: the kernel's own traps their
    arguments, a ``park`` its ``what`` (given by the primitive that parks).
    """
    if trap is None:
        return "yields to let others run"
    kind = trap[0]
    if kind == SLEEP:
        return f"sleeps {trap[1]:g} s"
    if kind == IO:
        f = trap[1]
        fd = f if isinstance(f, int) else f.fileno()
        return f"waits until fd {fd} is {'readable' if trap[2] == READ else 'writable'}"
    if kind == JOIN:
        return f"waits for task #{trap[1].id} ({trap[1].name})"
    if kind == SWITCH:
        return f"moves to {trap[1].name}"
    if kind == SPAWN:
        return f"spawns {_fn_name(trap[1])}"
    if kind == CURRENT:
        return "asks for its own Task"
    if kind == CALL:
        _, dispatcher, fn, _, seconds = trap
        if seconds is not None:
            return f"runs {_fn_name(fn)} with a {seconds:g} s timeout"
        return f"runs {_fn_name(fn)} on {dispatcher.name} and waits"
    if kind == PARK:
        what = trap[3] if len(trap) > 3 else None
        return what or f"waits ({_fn_name(trap[1])})"
    return repr(trap)


def frames(task) -> list:
    """The chain of ``yield from`` frames of a suspended task, outermost first.

    Each item is ``(filename, lineno, function, source line)``.
    """
    out = []
    coro = task.coro
    while coro is not None:
        frame = getattr(coro, "gi_frame", None) or getattr(coro, "cr_frame", None)
        if frame is None:
            break
        filename, lineno = frame.f_code.co_filename, frame.f_lineno
        out.append((filename, lineno, frame.f_code.co_name, linecache.getline(filename, lineno).strip()))
        coro = getattr(coro, "gi_yieldfrom", None) or getattr(coro, "cr_await", None)
    return out


def user_frames(task) -> list:
    """``frames(task)`` without the kernel's own: the calls the user wrote and called."""
    return [f for f in frames(task) if not f[0].startswith(_HERE)]


def where(task):
    """The innermost frame of ``task`` outside the kernel: the user's line it waits on."""
    chain = user_frames(task)
    return chain[-1] if chain else None


def task_tree(tasks) -> list:
    """``tasks`` and their ancestors (``Task.parent``) as indented lines, one per task.

    Ancestors that have ended are kept, so a live task is always shown under
    the task that spawned it; a waiting task says what it waits for.
    """
    shown = {}
    for task in tasks:
        while task is not None and task.id not in shown:
            shown[task.id] = task
            task = task.parent
    children = {}
    for task in shown.values():
        children.setdefault(task.parent.id if task.parent is not None else None, []).append(task)
    lines = []

    def walk(parent_id, depth):
        for task in sorted(children.get(parent_id, ()), key=lambda t: t.id):
            waits = f": {describe(task.trap)}" if task.state == WAITING else ""
            lines.append(f"{'    ' * depth}#{task.id} {task.name} [{task.state}{waits}]")
            walk(task.id, depth + 1)

    walk(None, 0)
    return lines
