"""The kernel's structure: the trap table by code, waits that describe themselves, no import cycle."""
import ast
import gc
import pathlib
import threading

from genloop.kernel import (
    Dispatchers,
    Event,
    Future,
    Lock,
    Queue,
    Semaphore,
    VirtualClock,
    current_task,
    park,
    run,
    sleep,
    spawn,
    traps,
)
from genloop.kernel.current import current_kernel
from genloop.kernel.introspect import describe
from genloop.kernel.signals import on_stop
from genloop.kernel.stepper import Stepper
from genloop.kernel.task import WAITING
from genloop.kernel.traps import PARKED
from tests.kernel.kernel_helpers import until

KERNEL = pathlib.Path(traps.__file__).parent


def _kernel():
    stepper = Stepper(lambda: (yield))
    stepper.close()
    return stepper.kernel


def test_the_trap_table_maps_each_code_to_its_handler():
    # park is the handler of every wait: a primitive's (PARK), a sleep, an I/O wait
    expected = {traps.SPAWN: "_trap_spawn", traps.JOIN: "_trap_join", traps.SLEEP: "park",
                traps.CURRENT: "_trap_current", traps.IO: "park", traps.CALL: "_trap_call",
                traps.SWITCH: "_trap_switch", traps.PARK: "park"}
    assert sorted(expected) == sorted(traps.TRAP_CODES) == list(range(len(expected)))
    table = _kernel()._handlers
    assert {code: table[code].__name__ for code in traps.TRAP_CODES} == expected


def test_the_table_is_keyed_by_code_not_by_the_order_of_the_handlers(monkeypatch):
    """The table comes from the handlers' own ``@_handles(CODE)`` marks: reordering them changes nothing."""
    from genloop.kernel import core

    shuffled = dict(reversed(list(core._HANDLERS.items())))
    monkeypatch.setattr(core, "_HANDLERS", shuffled)
    table = _kernel()._handlers
    assert table[traps.SPAWN].__name__ == "_trap_spawn"
    assert table[traps.JOIN].__name__ == "_trap_join"


def test_the_kernels_attributes_stay_in_its_class_layout():
    """Every trap reads the kernel's attributes: they must stay a plain slot read.

    CPython 3.11+ keeps an instance's attributes in a layout shared by its
    class while it has at most 30 and nothing asks for its ``__dict__``;
    otherwise they move to a dict of their own for good, and every
    ``self.x`` of the kernel's hot paths becomes a dict lookup (measured:
    0.4k instructions more per spawn + join; 2k more per Queue message when
    it happens once the loop has run a while). The collector then sees that
    dict among the kernel's referents instead of the values.
    """
    def main():
        on_stop(lambda: None).remove()      # kernel.signals keeps its state on the kernel
        yield from sleep(0)
        kernel = current_kernel()
        return [r for r in gc.get_referents(kernel) if type(r) is dict and "clock" in r]

    assert run(main) == []


def test_a_park_carries_its_own_description():
    def arm(task):
        return PARKED

    def main():
        waiter = yield from spawn(lambda: (yield from park(arm, lambda t: True, what="waits for the moon")))
        yield from until(lambda: waiter.state == WAITING)
        text = describe(waiter.trap)
        waiter.cancel()
        yield from waiter.wait_done()
        return text

    assert run(main) == "waits for the moon"


def test_every_primitive_says_what_its_waiter_waits_for():
    ev, fut, lock, sem, empty, full = Event(), Future(), Lock(), Semaphore(0), Queue(), Queue(1)
    full.put_nowait(0)

    def hold_lock():
        yield from lock.acquire()

    waits = {
        "waits for an Event": ev.wait,
        "waits for a Future": fut.wait,
        "waits to acquire a Lock": lock.acquire,
        "waits to acquire a Semaphore": sem.acquire,
        "waits to get from an empty Queue": empty.get,
        "waits to put into a full Queue": lambda: (yield from full.put(1)),
    }

    def main():
        yield from hold_lock()
        tasks = {}
        for text, fn in waits.items():
            tasks[text] = yield from spawn(fn)
        yield from until(lambda: all(t.state == WAITING for t in tasks.values()))
        seen = {text: describe(t.trap) for text, t in tasks.items()}
        for t in tasks.values():
            t.cancel()
        return seen

    seen = run(main)
    assert seen == {text: text for text in waits}


def test_kernel_waits_describe_themselves_from_their_trap():
    def sleeper():
        yield from sleep(0.5)

    def main():
        s = yield from spawn(sleeper, name="sleeper")
        me = yield from current_task()
        yield from until(lambda: s.state == WAITING)
        assert describe(s.trap) == "sleeps 0.5 s"
        assert describe((traps.JOIN, s, False)) == f"waits for task #{s.id} (sleeper)"
        assert describe((traps.IO, 7, traps.READ)) == "waits until fd 7 is readable"
        s.cancel()
        return me

    run(main, clock=VirtualClock())


def _imports(module: str) -> set:
    tree = ast.parse((KERNEL / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.add(node.module)
    return found


def test_core_and_the_thread_pools_do_not_import_each_other():
    assert "pools" not in _imports("core")
    assert "core" not in _imports("pools")
    assert "core" not in _imports("runqueue")


def _is_state(node) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "state"


def test_task_states_are_the_constants_of_task_py_everywhere():
    """No module sets or compares ``.state`` with a bare string: they use task.py's constants."""
    offenders = []
    for path in KERNEL.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and any(_is_state(t) for t in node.targets):
                values = [node.value]
            elif isinstance(node, ast.Compare) and any(_is_state(n) for n in (node.left, *node.comparators)):
                values = [node.left, *node.comparators]
            else:
                continue
            offenders += [f"{path.name}:{node.lineno}" for v in values
                          if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    assert not offenders


def test_an_unconfined_task_woken_by_a_plain_thread_resumes_on_main():
    """The documented choice: only the kernel's threads step tasks, so a plain thread hands it to Main."""
    ev = Event()
    seen = {}

    def waiter():
        seen["before"] = threading.get_ident()
        yield from ev.wait()
        seen["after"] = threading.get_ident()

    def main():
        t = yield from spawn(waiter, dispatcher=Dispatchers.Unconfined)
        yield from until(lambda: t.state == WAITING)
        threading.Thread(target=ev.set, name="plain-waker").start()
        yield from t.join()
        return threading.get_ident()

    main_ident = run(main)
    assert seen == {"before": main_ident, "after": main_ident}
