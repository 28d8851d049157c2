"""The other ways in: callbacks, plain threads, blocking methods, calls from server to client."""
import threading

import pytest

from genloop import rpc
from genloop.kernel import Dispatchers, Event, Future, gather, sleep, spawn, timeout_after
from genloop.rpc import BlockingClient, RemoteError, Server
from tests.rpc.rpcutil import DEADLINE, HOST, run_served, server_thread

THREADS = 4
CALLS_PER_THREAD = 50
#: Blocking calls that must be in the method at once to pass its barrier ...
PARALLEL_BLOCKING = 3
#: ... within this many seconds (threads start in microseconds; it bounds a failure).
MEET_WAIT = 1.0
SHORT_TIMEOUT = 0.05


def test_callbacks_run_on_main_with_result_or_error():
    server = Server()
    server.register("echo", lambda x: x)
    server.register("fail", lambda: 1 / 0)

    def body(port):
        client = yield from rpc.connect(HOST, port)
        outcomes = {}
        all_done = Event()

        def callback_for(name):
            def callback(result, error):
                outcomes[name] = (result, error, threading.current_thread().name)
                if len(outcomes) == 3:
                    all_done.set()
            return callback

        def from_default():
            client.call_cb("echo", ["from Default"], callback_for("default"))
            yield from sleep(0)

        client.call_cb("echo", ["from Main"], callback_for("main"))
        client.call_cb("fail", [], callback_for("fail"))
        helper = yield from spawn(from_default, dispatcher=Dispatchers.Default)
        yield from helper.join()
        yield from timeout_after(DEADLINE, all_done.wait)
        client.close()
        return outcomes

    outcomes = run_served(server, body)
    assert outcomes["main"] == ("from Main", None, "MainThread")
    assert outcomes["default"] == ("from Default", None, "MainThread")
    result, error, thread = outcomes["fail"]
    assert result is None and thread == "MainThread"
    assert isinstance(error, RemoteError) and error.type == "ZeroDivisionError"


def blocking_server():
    server = Server()
    server.register("echo", lambda x: x)
    server.register("thread_name", lambda: threading.current_thread().name, blocking=True)
    released = threading.Event()
    server.register("wait_for_release", lambda: released.wait(DEADLINE), blocking=True)
    server.register("release", released.set)
    barrier = threading.Barrier(PARALLEL_BLOCKING, timeout=MEET_WAIT)
    server.register("meet", lambda: barrier.wait() >= 0, blocking=True)
    return server


def test_blocking_clients_on_plain_threads():
    results, errors = {}, []

    def worker(port, me):
        try:
            with BlockingClient(HOST, port, timeout=DEADLINE) as client:
                results[me] = [client.call("echo", [me, k]) for k in range(CALLS_PER_THREAD)]
                with pytest.raises(RemoteError):
                    client.call("no_such_method")
        except BaseException as e:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(e)

    with server_thread(blocking_server()) as port:
        threads = [threading.Thread(target=worker, args=(port, i)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEADLINE)
    assert not errors, errors
    assert results == {i: [[i, k] for k in range(CALLS_PER_THREAD)] for i in range(THREADS)}


def test_blocking_client_timeout_then_its_own_answer():
    gate = Event()
    server = blocking_server()

    @server.register("gated")
    def gated(value):
        yield from gate.wait()
        return value

    with server_thread(server) as port, BlockingClient(HOST, port) as client:
        with pytest.raises(TimeoutError):
            client.call("gated", "late", timeout=SHORT_TIMEOUT)
        gate.set()
        assert client.call("gated", "mine", timeout=DEADLINE) == "mine"
        assert client.call("echo", "next", timeout=DEADLINE) == "next"


@pytest.mark.timeout(DEADLINE)     # the bug this guards against is a call that blocks forever
def test_blocking_client_timeout_applies_to_calls_and_server_pushes_are_dropped():
    gate = Event()
    server = blocking_server()

    @server.register("gated")
    def gated(value):
        yield from gate.wait()
        return value

    @server.register("chatty", with_peer=True)
    def chatty(peer, value):
        peer.notify("nobody_listens", 1)          # a BlockingClient cannot serve these
        return value

    with server_thread(server) as port, BlockingClient(HOST, port, timeout=SHORT_TIMEOUT) as client:
        with pytest.raises(TimeoutError):
            client.call("gated", "late")          # no per-call timeout: the client's applies
        gate.set()
        assert [client.call("chatty", i, timeout=DEADLINE) for i in range(3)] == [0, 1, 2]


def test_blocking_method_runs_on_an_io_thread_while_the_loop_serves():
    def body(port):
        client = yield from rpc.connect(HOST, port)
        name = yield from client.call("thread_name")
        # Returns True only if "release" is served while "wait_for_release" blocks.
        waiter = yield from spawn(client.call, "wait_for_release")
        yield from client.call("release")
        released = yield from timeout_after(DEADLINE, waiter.join)
        client.close()
        return name, released

    name, released = run_served(blocking_server(), body)
    assert name.startswith("genloop-IO"), name
    assert released is True


def test_blocking_methods_overlap_on_io_threads():
    def body(port):
        client = yield from rpc.connect(HOST, port)
        yield from client.call("thread_name")          # leaves an idle IO thread, as any server has
        # The barrier lets the calls through only if all of them block in it at once.
        met = yield from timeout_after(DEADLINE, gather, *(client.call("meet") for _ in range(PARALLEL_BLOCKING)))
        client.close()
        return met

    assert run_served(blocking_server(), body) == [True] * PARALLEL_BLOCKING


def test_server_calls_back_into_the_client_on_the_same_connection():
    server = Server()
    noted = Future()

    @server.register("relay", with_peer=True)
    def relay(peer, x):
        doubled = yield from peer.call("double", x)
        peer.notify("note", f"relayed {x}")
        return doubled + 1

    @server.register("countdown", with_peer=True)
    def countdown(peer, n):
        return "liftoff" if n == 0 else (yield from peer.call("countdown", n - 1))

    client_methods = rpc.Registry()
    client_methods.register("double", lambda x: 2 * x)
    client_methods.register("note", noted.set_result)
    client_methods.register("countdown", countdown, with_peer=True)

    def body(port):
        client = yield from rpc.connect(HOST, port, methods=client_methods)
        relayed = yield from client.call("relay", 20)
        note = yield from timeout_after(DEADLINE, noted.wait)
        # Calls nest across the connection, each side waiting on the other.
        liftoff = yield from timeout_after(DEADLINE, client.call, "countdown", 6)
        client.close()
        return relayed, note, liftoff

    assert run_served(server, body) == (41, "relayed 20", "liftoff")
