"""rpc over Unix sockets and TLS, async def methods and callers, and a graceful stop that answers calls in flight."""
import ssl

import pytest
import trustme

from genloop import kernel, rpc
from genloop.kernel import Event, gather, request_stop, sleep, spawn
from tests.net.netutil import until
from tests.rpc.rpcutil import HOST

pytestmark = pytest.mark.timeout(10)


def make_server():
    server = rpc.Server()
    server.register("add", lambda a, b: a + b)

    @server.register("slow_double")
    async def slow_double(x):
        await sleep(0.05)
        return 2 * x

    return server


def test_rpc_over_a_unix_socket(tmp_path):
    path = str(tmp_path / "rpc.sock")

    def main():
        server = make_server()
        yield from server.start(path=path)
        client = yield from rpc.connect(path=path)
        got = (yield from client.call("add", 2, 3)), (yield from client.call("slow_double", 21))
        client.close()
        yield from server.shutdown()
        return got

    assert kernel.run(main) == (5, 42)


def test_rpc_over_tls():
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    def main():
        server = make_server()
        tcp = yield from server.start(HOST, 0, ssl=server_ctx)
        client = yield from rpc.connect("localhost", tcp.port, ssl=client_ctx)
        got = yield from gather(*[client.call("slow_double", i) for i in range(50)])
        client.close()
        yield from server.shutdown()
        return got

    assert kernel.run(main) == [2 * i for i in range(50)]


def test_async_def_callers_await_connect_and_call():
    async def main():
        server = make_server()
        tcp = await server.start(HOST, 0)
        client = await rpc.connect(HOST, tcp.port)
        got = await client.call("add", 1, 2), await client.call("slow_double", 4, timeout=5)
        client.close()
        await server.shutdown()
        return got

    assert kernel.run(main) == (3, 8)


def test_a_graceful_stop_answers_the_calls_in_flight_then_ends_serve():
    released = Event()
    started, cleaned = [], []

    def main():
        server = rpc.Server(stop_grace=5)

        @server.register("wait")
        def wait(x):
            started.append(x)
            try:
                yield from released.wait()
                return x
            finally:
                cleaned.append(x)

        tcp = yield from server.start(HOST, 0)
        serving = yield from spawn(tcp.serve_forever)
        client = yield from rpc.connect(HOST, tcp.port)
        calls = []
        for i in range(4):
            calls.append((yield from spawn(client.call, "wait", i)))
        yield from until(lambda: len(started) == 4, "the calls to reach their handlers")
        assert request_stop()
        yield from until(lambda: tcp.listener.closed, "the listener to close")
        refused = None
        try:
            yield from rpc.connect(HOST, tcp.port)
        except OSError as e:
            refused = e
        assert not serving.done            # still draining: the calls are in flight
        released.set()
        answers = []
        for c in calls:
            answers.append((yield from c.join()))
        yield from serving.join()          # serve_forever returns once the stop has drained
        client.close()
        return answers, refused

    answers, refused = kernel.run(main)
    assert answers == [0, 1, 2, 3]
    assert isinstance(refused, ConnectionRefusedError)
    assert sorted(cleaned) == [0, 1, 2, 3]
