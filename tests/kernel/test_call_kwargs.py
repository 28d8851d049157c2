"""with_context and timeout_after pass keyword arguments on (as asyncio.to_thread does)."""
import subprocess
import sys

import pytest

from genloop.kernel import Dispatchers, Event, Timeout, VirtualClock, run, sleep, timeout_after, with_context


def test_with_context_runs_subprocess_with_keyword_arguments_on_io():
    def main():
        done = yield from with_context(Dispatchers.IO, subprocess.run, [sys.executable, "-c", "print('hi')"],
                                       capture_output=True, text=True, check=True)
        return done.stdout

    assert run(main) == "hi\n"


@pytest.mark.parametrize("dispatcher", [Dispatchers.Main, Dispatchers.Default, Dispatchers.IO],
                         ids=["Main", "Default", "IO"])
def test_keyword_arguments_reach_plain_generator_and_async_functions(dispatcher):
    def plain(a, *, b):
        return a, b

    def gen(a, *, b):
        yield from sleep(0)
        return a, b

    async def native(a, *, b):
        await sleep(0)
        return a, b

    def main():
        out = []
        for fn in (plain, gen, native):
            out.append((yield from with_context(dispatcher, fn, 1, b=2)))
        return out

    assert run(main) == [(1, 2)] * 3


def test_timeout_after_passes_keyword_arguments_and_names_the_function():
    def waits(*, what):
        yield from what.wait()

    def main():
        with pytest.raises(Timeout, match="waits"):
            yield from timeout_after(1, waits, what=Event())
        return (yield from timeout_after(1, lambda *, x: (yield from sleep(0)) or x, x=5))

    assert run(main, clock=VirtualClock()) == 5
