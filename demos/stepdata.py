"""The data beside a waiting task, for ``genloop step``: its locals, and the queues, events and locks it holds.

Reprs are short and carry no memory addresses, so a transcript is the same
on every run and every machine.
"""
import re
import reprlib
import types

from genloop.kernel import Event, Future, Lock, Queue, Semaphore, Task

#: Characters of one value's repr at most.
VALUE_WIDTH = 24
#: Locals shown per frame at most.
MAX_LOCALS = 8

_ADDRESS = re.compile(r" (object )?at 0x[0-9a-fA-F]+")
_SKIP = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type, types.MethodType)


class _Short(reprlib.Repr):
    def __init__(self):
        super().__init__()
        self.maxstring = self.maxother = VALUE_WIDTH
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = self.maxdeque = 4
        self.maxlevel = 3

    def repr_instance(self, obj, level):
        if isinstance(obj, Task):
            return f"#{obj.id} {obj.name}"
        try:
            text = _ADDRESS.sub("", repr(obj))
        except Exception:  # noqa: BLE001 - a broken __repr__ must not break the view
            return f"<{type(obj).__name__}>"
        return text if len(text) <= self.maxother else text[:self.maxother - 1] + "…"


_repr = _Short().repr


def short(text: str, width: int) -> str:
    """``text`` without memory addresses, cut to ``width`` characters with an ellipsis."""
    text = _ADDRESS.sub("", str(text))
    return text if len(text) <= width else text[:max(1, width - 1)] + "…"


def value(obj) -> str:
    """A short repr: a Task as ``#3 pong``, a kernel object by what it holds, anything else cut short."""
    return short(_repr(obj), VALUE_WIDTH + 8)


def _tasks(waiters) -> str:
    return ", ".join(f"#{t.id} {short(t.name, VALUE_WIDTH)}" for t in waiters)


def describe_object(obj) -> str | None:
    """What a Queue, Event, Lock, Semaphore or Future holds now, or None for anything else."""
    if isinstance(obj, Queue):
        items = list(obj._items)
        size = f" of {obj._maxsize}" if obj._maxsize else ""
        text = f"Queue{size} {value(items)}" + (" closed" if obj.closed else "")
        if obj._getters:
            text += f", getters {_tasks(obj._getters)}"
        if obj._putters:
            text += f", putters {_tasks(t for t, _ in obj._putters)}"
        return text
    if isinstance(obj, Event):
        return ("Event set" if obj.is_set() else "Event clear") + \
            (f", waiters {_tasks(obj._waiters)}" if obj._waiters else "")
    if isinstance(obj, Lock):
        return ("Lock held" if obj.locked() else "Lock free") + \
            (f", waiters {_tasks(obj._waiters)}" if obj._waiters else "")
    if isinstance(obj, Semaphore):
        return f"Semaphore {obj.value}" + (f", waiters {_tasks(obj._waiters)}" if obj._waiters else "")
    if isinstance(obj, Future):
        state = ("done: " + value(obj._result)) if obj.done() and obj._exception is None else \
            ("failed" if obj.done() else "pending")
        return f"Future {state}" + (f", waiters {_tasks(obj._waiters)}" if obj._waiters else "")
    return None


def _frames(task):
    """The live generator frames of ``task``, outermost first."""
    coro = task.coro
    while coro is not None:
        frame = getattr(coro, "gi_frame", None) or getattr(coro, "cr_frame", None)
        if frame is None:
            return
        yield frame
        coro = getattr(coro, "gi_yieldfrom", None) or getattr(coro, "cr_await", None)


def frame_data(task, script) -> tuple:
    """(locals of the innermost frame in ``script``, kernel objects in any of its frames there), as words."""
    mine = [f for f in _frames(task) if f.f_code.co_filename == script]
    if not mine:
        return [], []
    local = []
    for name, obj in mine[-1].f_locals.items():
        if name.startswith("_") or isinstance(obj, _SKIP) or describe_object(obj) is not None:
            continue
        local.append(f"{name}={value(obj)}")
    objects, seen = [], set()
    for frame in reversed(mine):
        for name, obj in frame.f_locals.items():
            text = describe_object(obj)
            if text is not None and id(obj) not in seen:
                seen.add(id(obj))
                objects.append(f"{name}: {text}")
    return local[:MAX_LOCALS], objects
