"""How a peer's output leaves: at the end of the sending thread's turn, in one system call per turn,
from whichever thread queued it (a kernel worker, Main, or a plain thread through the writer task)."""
import threading

from genloop import rpc
from genloop.kernel import Dispatchers, Event, gather, spawn, timeout_after
from genloop.rpc import Server
from tests.rpc.rpcutil import DEADLINE, HOST, run_served

CALLERS = 50


class CountingSocket:
    """A socket that counts the sends made on it (and forwards everything else)."""

    def __init__(self, sock):
        self._sock = sock
        self.sends = 0

    def send(self, data, *flags):
        self.sends += 1
        return self._sock.send(data, *flags)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def echo_server():
    server = Server()
    server.register("echo", lambda x: x)
    return server


def test_the_calls_of_one_turn_leave_in_one_send():
    def body(port):
        client = yield from rpc.connect(HOST, port)
        counting = client.sock.sock = CountingSocket(client.sock.sock)
        # Every caller takes its first step in the same turn: their calls go out together.
        results = yield from timeout_after(DEADLINE, gather, *(client.call("echo", i) for i in range(CALLERS)))
        client.close()
        return results, counting.sends

    results, sends = run_served(echo_server(), body)
    assert results == list(range(CALLERS))
    assert sends == 1


def test_calls_from_a_worker_leave_at_its_batch_end():
    # A client started on a worker shares its state under its lock (a client
    # started on Main would take the call to Main): the worker's batch end sends it.
    def on_default(port):
        client = yield from rpc.connect(HOST, port)
        counting = client.sock.sock = CountingSocket(client.sock.sock)
        answer = yield from client.call("echo", threading.current_thread().name)
        client.close()
        return answer, counting.sends

    def body(port):
        t = yield from spawn(on_default, port, dispatcher=Dispatchers.Default)
        answer, sends = yield from timeout_after(DEADLINE, t.join)
        assert sends == 1
        return answer

    assert run_served(echo_server(), body).startswith("genloop-Default")


def test_a_plain_thread_sends_through_the_writer_task():
    """A thread that runs no turns cannot flush at a turn's end: the writer task sends for it."""
    def body(port):
        client = yield from rpc.connect(HOST, port)
        answered = Event()
        got = []

        def callback(result, error):
            got.append((result, error))
            answered.set()

        thread = threading.Thread(target=client.call_cb, args=("echo", ["from a thread"], callback))
        thread.start()
        thread.join(DEADLINE)
        yield from timeout_after(DEADLINE, answered.wait)
        client.close()
        return got

    assert run_served(echo_server(), body) == [("from a thread", None)]
