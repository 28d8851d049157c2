"""A caller parked on an rpc answer says so (in the step view, the monitor and the tracer)."""
from genloop.kernel import Event, checkpoint, spawn
from genloop.kernel.introspect import describe
from genloop.kernel.task import WAITING
from genloop.rpc import Server, connect
from tests.rpc.rpcutil import HOST, run_served


def test_a_call_in_flight_reads_waits_for_an_rpc_answer():
    answer = Event()
    server = Server()

    def slow():
        yield from answer.wait()
        return "done"

    server.register("slow", slow)

    def body(port):
        client = yield from connect(HOST, port)
        try:
            caller = yield from spawn(client.call, "slow")
            while caller.state != WAITING:
                yield from checkpoint()
            text = describe(caller.trap)
            answer.set()
            assert (yield from caller.join()) == "done"
            return text
        finally:
            client.close()

    assert run_served(server, body) == "waits for an rpc answer"


def test_calls_in_flight_park_on_the_peers_one_arm_and_abort_with_the_call_in_the_trap():
    """The answer wait binds nothing per call: every caller's trap holds the same arm and abort."""
    answer = Event()
    server = Server()

    def slow(n):
        yield from answer.wait()
        return n

    server.register("slow", slow)

    def body(port):
        client = yield from connect(HOST, port)
        try:
            callers = []
            for n in range(2):
                callers.append((yield from spawn(client.call, "slow", n)))
            while any(c.state != WAITING for c in callers):
                yield from checkpoint()
            traps = [c.trap for c in callers]
            answer.set()
            for n, c in enumerate(callers):
                assert (yield from c.join()) == n
            return traps, client
        finally:
            client.close()

    (first, second), client = run_served(server, body)
    assert first[1] is second[1] is client._arm_answer
    assert first[2] is second[2] is client._abort_answer
    assert (first[4:], second[4:]) == (("slow", (0,)), ("slow", (1,)))
