"""``async def`` code can await the traps (generators stay the primary style)."""
import threading

import pytest

from genloop.kernel import (
    Cancelled,
    Dispatchers,
    Event,
    Future,
    Lock,
    Queue,
    Semaphore,
    TaskGroup,
    Timeout,
    VirtualClock,
    checkpoint,
    coroutine,
    current_task,
    gather,
    run,
    sleep,
    spawn,
    timeout_after,
    with_context,
)
from tests.kernel.kernel_helpers import awaitable_generator_function, public_generator_functions


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


# -- every public suspending function works with await ----------------------------------------

def test_every_public_generator_function_of_the_kernel_is_awaitable():
    import genloop.kernel

    found = public_generator_functions(genloop.kernel)
    assert {"TaskGroup.spawn", "TaskGroup.join", "gather", "Task.join", "Queue.get", "sleep"} <= set(found)
    assert [name for name, fn in found.items() if not awaitable_generator_function(fn)] == []


def test_async_def_awaits_task_groups_gather_and_the_primitives():
    clock = VirtualClock()

    async def child(x):
        await sleep(x)
        return x

    async def main():
        group = TaskGroup()
        t = await group.spawn(child, 2)
        await group.join()
        lock, sem, fut, ev = Lock(), Semaphore(1), Future(), Event()
        await lock.acquire()
        lock.release()
        await sem.acquire()
        fut.set_result("fut")
        ev.set()
        await ev.wait()
        both = await gather(child(1), child(3))
        q = Queue(1)
        await q.put("q")
        return t.result, both, await fut.wait(), await q.get(), clock.now()

    assert run(main, clock=clock) == (2, [1, 3], "fut", "q", 5)


def test_an_async_def_failure_in_a_group_is_caught_with_except_star():
    async def failing():
        await sleep(0)
        raise ValueError("async")

    async def main():
        group = TaskGroup()
        await group.spawn(failing)
        caught = []
        try:
            await group.join()
        except* ValueError as eg:
            caught = [str(e) for e in eg.exceptions]
        return caught

    assert run(main) == ["async"]


def test_async_def_main_spawn_and_with_context_on_every_dispatcher():
    async def where():
        await checkpoint()
        return threading.current_thread().name

    async def main():
        t = await spawn(where, dispatcher=Dispatchers.Default)
        on_io = await with_context(Dispatchers.IO, where)
        on_default = await with_context(Dispatchers.Default, where)
        return await t.join(), on_io, on_default, threading.current_thread().name

    spawned, on_io, on_default, home = run(main)
    assert spawned.startswith("genloop-Default-") and on_default.startswith("genloop-Default-")
    assert on_io.startswith("genloop-IO-") and home == "MainThread"


def test_a_marked_generator_can_yield_from_an_async_def_coroutine():
    """Library code written as generators can drive user code written with async def."""
    async def user_handler(x):
        await sleep(0)
        return x + 1

    @coroutine
    def library(handler, x):
        return (yield from handler(x))

    def main():
        return (yield from library(user_handler, 1))

    assert run(main) == 2


def test_coroutine_refuses_what_is_not_a_generator_function():
    async def native():
        pass

    with pytest.raises(TypeError):
        coroutine(lambda: None)
    with pytest.raises(TypeError):
        coroutine(native)
