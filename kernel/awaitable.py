"""``coroutine``: one decorator that lets a generator function be used with ``yield from`` and ``await``.

A kernel coroutine is a plain generator. ``types.coroutine`` marks a generator
function's code as an "iterable coroutine" (the flag the standard library's
own generator-based coroutines carried), which buys two things at no cost per
call: ``async def`` code can ``await`` what it returns, and inside it
``yield from`` accepts an ``async def`` coroutine object too, so library code
written as generators can drive user code written either way. Every public
suspending function of the kernel wears it; ``genloop.net`` and
``genloop.rpc`` use the same decorator.
"""
import inspect
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Type checkers know types.coroutine: under it, what a generator function
    # returns works with both `yield from` (typed by its `Gen[T]`) and `await`.
    from types import coroutine
else:
    def coroutine(fn):
        """Mark generator function ``fn`` so that ``await fn(...)`` works as ``yield from fn(...)`` does.

        Returns ``fn`` itself (its code object gains the flag), so it costs nothing
        per call. Anything but a generator function is a ``TypeError``: a plain
        function would be wrapped in a slower adapter, and an ``async def`` is
        awaitable already.
        """
        if not inspect.isgeneratorfunction(fn):
            raise TypeError(f"coroutine() takes a generator function, got {fn!r}")
        return types.coroutine(fn)


