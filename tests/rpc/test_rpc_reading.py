"""How a peer reads: after a short read of a plain socket it waits for the next edge, no recv bound to fail."""
import sys

from genloop import rpc
from genloop.kernel import timeout_after
from genloop.rpc import Server
from tests.rpc.rpcutil import DEADLINE, HOST, run_served

CALLS = 20


def test_one_caller_costs_one_recv_per_answer():
    server = Server()
    server.register("echo", lambda x: x)
    recvs = 0

    def count(frame, event, fn):
        nonlocal recvs
        if event == "c_call" and fn.__name__ == "recv" and getattr(fn, "__self__", None) is watched:
            recvs += 1

    def calls(client):
        for i in range(CALLS):
            assert (yield from client.call("echo", i)) == i

    def body(port):
        nonlocal watched
        client = yield from rpc.connect(HOST, port)
        watched = client.sock.sock
        sys.setprofile(count)
        try:
            yield from timeout_after(DEADLINE, calls, client)
        finally:
            sys.setprofile(None)
            client.close()

    watched = None
    run_served(server, body)
    # A recv that fails with BlockingIOError after each answer would double it.
    assert CALLS <= recvs <= CALLS + 1
