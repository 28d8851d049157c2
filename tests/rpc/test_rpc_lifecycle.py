"""Calls that end early: timeouts, cancelled callers, a connection that drops."""
import socket
import struct
import threading

import msgpack
import pytest

from genloop import kernel, rpc
from genloop.kernel import Cancelled, Dispatchers, Event, Timeout, spawn, timeout_after
from genloop.rpc import ConnectionLost, Server
from tests.rpc.rpcutil import DEADLINE, HOST, run_served, wait_thread_event

IN_FLIGHT = 50
SHORT_TIMEOUT = 0.05


class Gate:
    """A server method that answers only once the test opens the gate."""

    def __init__(self):
        self.entered = 0
        self.all_in = Event()
        self.open = Event()
        self.expected = 1

    def method(self, value):
        self.entered += 1
        if self.entered == self.expected:
            self.all_in.set()
        yield from self.open.wait()
        return value


def gated_server(gate):
    server = Server()
    server.register("gated", gate.method)
    server.register("echo", lambda x: x)
    return server


def test_timed_out_call_never_receives_its_late_answer_and_the_next_call_gets_its_own():
    gate = Gate()
    server = gated_server(gate)
    late_sent = Event()

    @server.register("after_late")
    def after_late(value):
        # Answers only once the late answer is queued ahead of ours on the wire.
        yield from late_sent.wait()
        return value

    @server.register("gated_then_mark")
    def gated_then_mark(value):
        result = yield from gate.method(value)
        late_sent.set()    # our answer is queued when this task returns, before after_late runs
        return result

    def body(port):
        client = yield from rpc.connect(HOST, port)
        with pytest.raises(Timeout):
            yield from client.call("gated_then_mark", "late", timeout=SHORT_TIMEOUT)
        gate.open.set()
        got = yield from client.call("after_late", "mine")
        timed = yield from client.call("echo", "fresh", timeout=DEADLINE)
        client.close()
        return got, timed

    assert run_served(server, body) == ("mine", "fresh")


@pytest.mark.parametrize("timeout", [None, DEADLINE], ids=["no-timeout", "with-timeout"])
def test_cancelled_caller_is_forgotten_and_later_calls_work(timeout):
    gate = Gate()

    def body(port):
        client = yield from rpc.connect(HOST, port)
        def abandoned():
            return (yield from client.call("gated", "abandoned", timeout=timeout))

        caller = yield from spawn(abandoned)
        yield from timeout_after(DEADLINE, gate.all_in.wait)
        caller.cancel()
        with pytest.raises(Cancelled):
            yield from caller.join()
        gate.open.set()                       # the abandoned answer now arrives, unclaimed
        gate.entered, gate.expected = 0, 1
        got = yield from client.call("gated", "mine")
        client.close()
        return got

    assert run_served(gated_server(gate), body) == "mine"


def calls_all_lost(client, dispatcher, cut):
    """Start IN_FLIGHT calls, ``cut()`` the connection; each must fail with ConnectionLost."""
    callers = []
    for i in range(IN_FLIGHT):
        callers.append((yield from spawn(client.call, "gated", i, dispatcher=dispatcher)))
    yield from cut()
    for caller in callers:
        with pytest.raises(ConnectionLost):
            yield from timeout_after(DEADLINE, caller.join)
    yield from timeout_after(DEADLINE, client.wait_closed)
    with pytest.raises(ConnectionLost):
        yield from client.call("echo", "after")
    with pytest.raises(ConnectionLost):
        client.notify("echo", "after")
    failed = []
    client.call_cb("echo", ["after"], lambda result, error: failed.append((result, error)))
    assert len(failed) == 1 and failed[0][0] is None and isinstance(failed[0][1], ConnectionLost)


@pytest.mark.parametrize("dispatcher", [Dispatchers.Main, Dispatchers.Default], ids=["Main", "Default"])
def test_server_shutdown_fails_every_pending_call(dispatcher):
    gate = Gate()
    gate.expected = IN_FLIGHT
    server = gated_server(gate)

    def cut():
        yield from timeout_after(DEADLINE, gate.all_in.wait)
        yield from server.shutdown()

    def body(port):
        client = yield from rpc.connect(HOST, port)
        yield from calls_all_lost(client, dispatcher, cut)

    run_served(server, body)


def test_connection_reset_fails_every_pending_call():
    # A plain server that reads the requests, then resets the connection (RST, not FIN).
    listener = socket.create_server((HOST, 0))
    got_all = threading.Event()

    def serve():
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(DEADLINE)
            unpacker = msgpack.Unpacker()
            seen = 0
            while seen < IN_FLIGHT:
                unpacker.feed(conn.recv(65536))
                seen += sum(1 for _ in unpacker)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            got_all.set()

    thread = threading.Thread(target=serve)
    thread.start()

    def cut():
        yield from wait_thread_event(got_all)

    def main():
        client = yield from rpc.connect(HOST, listener.getsockname()[1])
        yield from calls_all_lost(client, Dispatchers.Main, cut)

    try:
        kernel.run(main)
    finally:
        thread.join(DEADLINE)
        listener.close()


def test_closing_the_client_fails_its_own_pending_calls():
    gate = Gate()
    gate.expected = IN_FLIGHT

    def body(port):
        client = yield from rpc.connect(HOST, port)

        def cut():
            yield from timeout_after(DEADLINE, gate.all_in.wait)
            client.close()

        yield from calls_all_lost(client, Dispatchers.Main, cut)

    run_served(gated_server(gate), body)


def test_handlers_in_flight_are_cancelled_when_their_connection_drops():
    gate = Gate()
    gate.expected = IN_FLIGHT
    ended = []
    all_ended = Event()
    server = gated_server(gate)

    @server.register("watched")
    def watched(value):
        try:
            return (yield from gate.method(value))
        finally:
            ended.append(value)
            if len(ended) == IN_FLIGHT:
                all_ended.set()

    def body(port):
        client = yield from rpc.connect(HOST, port)
        for i in range(IN_FLIGHT):
            client.call_cb("watched", [i], lambda result, error: None)
        yield from timeout_after(DEADLINE, gate.all_in.wait)
        client.close()
        # Nobody will ever read their answers: they must not wait on for the gate.
        yield from timeout_after(DEADLINE, all_ended.wait)
        return sorted(ended)

    assert run_served(server, body) == list(range(IN_FLIGHT))
