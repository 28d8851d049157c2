"""``async def`` code can await the traps (generators stay the primary style)."""
import threading

import pytest

from genloop.kernel import (
    Cancelled,
    Dispatchers,
    Event,
    Queue,
    Timeout,
    VirtualClock,
    checkpoint,
    current_task,
    gather,
    run,
    sleep,
    spawn,
    timeout_after,
    with_context,
)


def test_async_def_awaits_the_traps():
    clock = VirtualClock()
    q = Queue()

    async def child(x):
        await sleep(1)
        await checkpoint()
        await q.put(x)
        return x * 2

    async def never():
        await Event().wait()

    async def main():
        me = await current_task()
        t = await spawn(child, 21)
        item = await q.get()
        doubled = await t.join()
        on_io = await with_context(Dispatchers.IO, lambda: threading.current_thread().name)
        with pytest.raises(Timeout):
            await timeout_after(5, never)
        return me.name, item, doubled, on_io, clock.now()

    name, item, doubled, on_io, now = run(main, clock=clock)
    assert name.endswith("main")
    assert (item, doubled) == (21, 42)
    assert on_io.startswith("genloop-IO-")
    assert now == 6


def test_async_and_generator_tasks_mix():
    async def async_child():
        await sleep(0)
        return "async"

    def gen_child():
        yield
        return "gen"

    def main():
        a = yield from spawn(async_child)
        b = yield from spawn(gen_child)
        return (yield from a.join()), (yield from b.join()), (yield from gather(gen_child()))

    assert run(main) == ("async", "gen", ["gen"])


def test_async_task_is_cancelled_at_an_await():
    log = []

    async def child():
        try:
            await sleep(3600)
        finally:
            log.append("finally")

    def main():
        t = yield from spawn(child)
        while t.state != "waiting":
            yield
        t.cancel()
        with pytest.raises(Cancelled):
            yield from t.join()

    run(main)
    assert log == ["finally"]
