"""Many coroutines, one connection: every caller gets its own answer, whatever the order."""
import random

import pytest

from genloop import rpc
from genloop.kernel import Event, gather, sleep, timeout_after
from genloop.rpc import Server
from tests.rpc.rpcutil import DEADLINE, HOST, run_served

pytestmark = pytest.mark.concurrency

CALLERS = 1_000
CALLS_EACH = 10
#: Longest server-side delay of the shuffled method: far above the time it takes
#: a request to arrive, so answers leave in a different order than requests came.
MAX_DELAY = 0.004
SEED = 1234


def calls_from_many_coroutines(port, method):
    """CALLERS coroutines make CALLS_EACH calls each over one client; every answer is checked."""
    client = yield from rpc.connect(HOST, port)

    def caller(me):
        for k in range(CALLS_EACH):
            tag = [me, k]
            got = yield from client.call(method, tag)
            assert got == tag, f"caller {me} call {k} got the answer {got} meant for another"
        return me

    try:
        done = yield from timeout_after(DEADLINE, gather, *(caller(i) for i in range(CALLERS)))
    finally:
        client.close()
    assert done == list(range(CALLERS))


def test_randomly_delayed_answers_reach_their_own_callers():
    rng = random.Random(SEED)
    arrived, answered = [], []
    server = Server()

    @server.register("delayed")
    def delayed(tag):
        arrived.append(tag)
        yield from sleep(rng.uniform(0, MAX_DELAY))
        answered.append(tag)
        return tag

    # Real time, not VirtualClock: with a socket always waited on, virtual time
    # only moves while Main sleeps in poll, so these sleeps stretch 4-10x.
    run_served(server, calls_from_many_coroutines, "delayed")
    assert len(answered) == CALLERS * CALLS_EACH
    assert answered != arrived, "answers left in arrival order: nothing was reordered"


def test_answers_released_in_reverse_order_reach_their_own_callers():
    # Each caller has one call in flight, so the server holds exactly one call
    # per caller before it answers them all, newest first.
    held = []
    batches = []
    server = Server(max_in_flight=CALLERS)      # every caller's call is held at once

    @server.register("held")
    def hold(tag):
        answer = Event()
        held.append((tag, answer))
        if len(held) == CALLERS:
            batches.append([t for t, _ in held])
            for _, ev in reversed(held):
                ev.set()
            held.clear()
        yield from answer.wait()
        return tag

    run_served(server, calls_from_many_coroutines, "held")
    assert len(batches) == CALLS_EACH
    assert all(sorted(b) == sorted([i, k] for i in range(CALLERS)) for k, b in enumerate(batches))
