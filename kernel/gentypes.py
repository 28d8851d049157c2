"""`Gen[T]`: the type of a genloop coroutine that returns ``T``.

A coroutine here is a plain generator, so ``yield from f()`` evaluates to
what ``f`` returns. Annotating ``def f() -> Gen[int]`` tells a type checker
just that; what a coroutine yields (traps) and is sent back is the kernel's
business, hence ``Any``.
"""
from collections.abc import Generator
from typing import Any, TypeAlias, TypeVar

T = TypeVar("T")

Gen: TypeAlias = Generator[Any, Any, T]
