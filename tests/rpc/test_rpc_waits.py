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
