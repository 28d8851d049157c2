"""A peer whose reader runs on Main keeps its state on Main's thread: the others hand over.

Calls from tasks on another dispatcher hop to Main and back; ``call_cb``,
``notify`` and ``close`` from plain threads are handed to Main; a peer
started elsewhere shares its state under its lock, from any thread.
"""
import threading
import time

import pytest

from genloop import rpc
from genloop.kernel import Cancelled, Dispatchers, Event, Future, gather, spawn, timeout_after
from genloop.rpc import ConnectionLost, Server
from tests.rpc.rpcutil import DEADLINE, HOST, run_served, wait_thread_event

pytestmark = pytest.mark.concurrency

CALLERS = 20


def holding_server():
    """``echo`` answers at once; ``hold`` answers once ``release`` is set; ``tell`` records notifications."""
    server = Server()
    release = Event()
    told, holding = [], []
    server.register("echo", lambda x: x)

    @server.register("hold")
    def hold(x):
        holding.append(x)
        yield from release.wait()
        return x

    server.register("tell", told.append)
    server.release, server.told, server.holding = release, told, holding
    return server


def until(condition):
    """Let others run until ``condition()`` holds (bounded by DEADLINE)."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        yield


def thread_name():
    return threading.current_thread().name


def test_calls_from_another_dispatcher_hop_to_main_and_resume_on_their_own():
    def caller(client, i):
        got = yield from client.call("echo", i)
        return got, thread_name()

    def body(port):
        client = yield from rpc.connect(HOST, port)
        try:
            tasks = []
            for i in range(CALLERS):
                tasks.append((yield from spawn(caller, client, i, dispatcher=Dispatchers.Default)))
            return (yield from timeout_after(DEADLINE, gather, *(t.join() for t in tasks)))
        finally:
            client.close()

    results = run_served(holding_server(), body)
    assert [got for got, _ in results] == list(range(CALLERS))
    assert all(name.startswith("genloop-Default") for _, name in results)


def test_a_hopped_call_can_be_cancelled_and_its_late_answer_is_dropped():
    server = holding_server()

    def caller(client):
        return (yield from client.call("hold", "late"))

    def body(port):
        client = yield from rpc.connect(HOST, port)
        try:
            t = yield from spawn(caller, client, dispatcher=Dispatchers.Default)
            yield from until(lambda: server.holding)      # the call is in Main's table and on the server
            t.cancel()
            try:
                yield from timeout_after(DEADLINE, t.join)
            except Cancelled:
                pass
            assert not client._pending
            server.release.set()                # the late answer arrives and is dropped
            assert (yield from timeout_after(DEADLINE, client.call, "echo", "still works")) == "still works"
            return t.cancelled
        finally:
            client.close()

    assert run_served(server, body) is True


def test_notify_call_cb_and_close_from_a_plain_thread():
    server = holding_server()

    def body(port):
        client = yield from rpc.connect(HOST, port)
        answered, held = Future(), Future()
        done = threading.Event()

        def from_thread():
            for i in range(3):
                client.notify("tell", i)
            client.call_cb("echo", ["cb"], lambda result, error: answered.set_result((result, error)))
            client.call_cb("hold", ["never"], lambda result, error: held.set_result((result, error)))
            done.set()

        thread = threading.Thread(target=from_thread)
        thread.start()
        yield from wait_thread_event(done)
        thread.join(DEADLINE)
        assert (yield from timeout_after(DEADLINE, answered.wait)) == ("cb", None)
        assert server.told == [0, 1, 2]         # sent before the call, in order
        closing = threading.Thread(target=client.close)
        closing.start()
        result, error = yield from timeout_after(DEADLINE, held.wait)
        closing.join(DEADLINE)
        server.release.set()
        return result, error

    result, error = run_served(server, body)
    assert result is None and isinstance(error, ConnectionLost)


def test_a_bad_call_from_a_plain_thread_raises_there():
    def body(port):
        client = yield from rpc.connect(HOST, port)
        errors = []

        def from_thread():
            for bad in (lambda: client.call_cb(42, [], print), lambda: client.call_cb("echo", [object()], print),
                        lambda: client.notify("tell", object())):
                try:
                    bad()
                except TypeError as e:
                    errors.append(e)

        thread = threading.Thread(target=from_thread)
        thread.start()
        yield from wait_thread_event_of(thread)
        got = yield from timeout_after(DEADLINE, client.call, "echo", "fine")
        client.close()
        return len(errors), got

    assert run_served(holding_server(), body) == (3, "fine")


def wait_thread_event_of(thread):
    ended = threading.Event()
    threading.Thread(target=lambda: (thread.join(DEADLINE), ended.set())).start()
    yield from wait_thread_event(ended)


def test_a_callback_that_closes_the_peer_fails_the_rest_of_its_read_once():
    server = holding_server()

    def body(port):
        client = yield from rpc.connect(HOST, port)
        calls = []
        finished = Event()

        def first(result, error):
            calls.append(("first", result, error))
            client.close()          # the other answers of this read are still being handed out

        def other(result, error):
            calls.append(("other", result, type(error)))
            if len(calls) == 4:
                finished.set()

        client.call_cb("hold", ["a"], first)
        for name in ("b", "c", "d"):
            client.call_cb("hold", [name], other)
        yield from until(lambda: len(server.holding) == 4)
        server.release.set()        # the four answers leave in one turn, and arrive in one read
        yield from timeout_after(DEADLINE, finished.wait)
        return calls

    calls = run_served(server, body)
    assert calls[0] == ("first", "a", None)
    assert sorted(calls[1:]) == [("other", None, ConnectionLost)] * 3    # each exactly once


def test_a_peer_started_on_a_worker_shares_its_state_under_its_lock():
    def started_on_default(port):
        client = yield from rpc.connect(HOST, port)
        assert client._home is None
        return client

    def main_caller(client, i):
        return (yield from client.call("echo", i))

    def body(port):
        t = yield from spawn(started_on_default, port, dispatcher=Dispatchers.Default)
        client = yield from timeout_after(DEADLINE, t.join)
        try:
            tasks = []
            for i in range(CALLERS):
                where = Dispatchers.Default if i % 2 else None
                tasks.append((yield from spawn(main_caller, client, i, dispatcher=where)))
            return (yield from timeout_after(DEADLINE, gather, *(t.join() for t in tasks)))
        finally:
            client.close()

    assert run_served(holding_server(), body) == list(range(CALLERS))
