"""Each task runs in its own contextvars.Context, copied from its spawner's (asyncio's rule)."""
import contextvars
import threading

import pytest

from genloop.kernel import (
    Dispatchers,
    Event,
    TaskGroup,
    VirtualClock,
    checkpoint,
    gather,
    run,
    sleep,
    spawn,
    switch_to,
    timeout_after,
    with_context,
)
from tests.kernel.kernel_helpers import PlainThread

request_id = contextvars.ContextVar("request_id", default=None)


def test_two_handlers_on_main_each_read_back_their_own_value():
    def handler(rid, turns):
        request_id.set(rid)
        seen = []
        for _ in range(turns):
            yield from checkpoint()          # the other handler runs and sets its own id
            seen.append(request_id.get())
        return seen

    def main():
        return (yield from gather(handler("a", 5), handler("b", 5)))

    assert run(main) == [["a"] * 5, ["b"] * 5]


def test_nothing_leaks_into_the_thread_that_called_run_and_main_sees_its_values():
    request_id.set(None)
    outer = contextvars.ContextVar("outer")
    outer.set("from the caller")

    def main():
        request_id.set("inside")
        yield from sleep(0)
        return outer.get()

    assert run(main) == "from the caller"
    assert request_id.get() is None


@pytest.mark.concurrency
@pytest.mark.parametrize("dispatcher", [Dispatchers.Main, Dispatchers.Default, Dispatchers.IO],
                         ids=["Main", "Default", "IO"])
def test_a_spawned_task_sees_the_spawners_values_and_its_own_sets_stay_its_own(dispatcher):
    def child():
        seen = request_id.get()
        request_id.set("child")
        yield from checkpoint()
        return seen, request_id.get(), threading.current_thread().name

    def main():
        request_id.set("parent")
        t = yield from spawn(child, dispatcher=dispatcher)
        request_id.set("parent, later")      # the child got a copy at spawn time
        got = yield from t.join()
        return got, request_id.get()

    (seen, own, thread), parent_after = run(main)
    assert (seen, own, parent_after) == ("parent", "child", "parent, later")
    assert thread.startswith("genloop-") or dispatcher is Dispatchers.Main


@pytest.mark.concurrency
@pytest.mark.parametrize("dispatcher", [Dispatchers.Default, Dispatchers.IO, Dispatchers.Main],
                         ids=["Default", "IO", "Main"])
def test_with_context_runs_the_call_in_the_callers_context(dispatcher):
    def plain():
        seen = request_id.get()
        request_id.set("changed by the call")
        return seen

    def gen():
        yield from checkpoint()
        return request_id.get()

    async def native():
        await checkpoint()
        return request_id.get()

    def main():
        request_id.set("caller")
        out = [(yield from with_context(dispatcher, plain))]
        out.append((yield from with_context(dispatcher, gen)))
        out.append((yield from with_context(dispatcher, native)))
        out.append((yield from timeout_after(5, gen)))
        out.append(request_id.get())          # a copy, as asyncio.to_thread: the call's set stays there
        return out

    assert run(main, clock=VirtualClock()) == ["caller"] * 5


@pytest.mark.concurrency
def test_worker_threads_carry_no_value_from_one_task_to_the_next():
    """One Default thread steps tasks of different requests in turn; none sees another's."""
    def setter(rid, go):
        request_id.set(rid)
        yield from go.wait()
        return request_id.get()

    def reader():
        yield from checkpoint()
        return request_id.get()

    def main():
        go = Event()
        setters = []
        for i in range(4):
            setters.append((yield from spawn(setter, f"r{i}", go, dispatcher=Dispatchers.Default)))
        readers = []
        for _ in range(4):
            readers.append((yield from spawn(reader, dispatcher=Dispatchers.Default)))
        go.set()
        return (yield from gather(*(t.join() for t in setters))), (yield from gather(*(t.join() for t in readers)))

    setters, readers = run(main, default_threads=1)
    assert setters == ["r0", "r1", "r2", "r3"]
    assert readers == [None] * 4


def test_a_task_that_moves_keeps_its_context():
    def main():
        request_id.set("moving")
        yield from switch_to(Dispatchers.Default)
        on_default = request_id.get()
        yield from switch_to(Dispatchers.Main)
        return on_default, request_id.get()

    assert run(main) == ("moving", "moving")


def test_task_group_children_copy_the_spawners_context():
    def child():
        yield from checkpoint()
        return request_id.get()

    def main():
        request_id.set("group")
        group = TaskGroup()
        t = yield from group.spawn(child, dispatcher=Dispatchers.Default)
        yield from group.join()
        return t.result

    assert run(main) == "group"


def test_kernels_on_two_plain_threads_do_not_mix_values():
    def main(rid):
        request_id.set(rid)
        for _ in range(50):
            yield from checkpoint()
            assert request_id.get() == rid
        return rid

    threads = [PlainThread(run, main, f"t{i}") for i in range(2)]
    assert [t.join() for t in threads] == ["t0", "t1"]
