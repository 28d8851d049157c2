"""net with async def: awaiting streams and servers, and async def handlers and apps."""
import socket

import pytest

from genloop import kernel
from genloop.net import Response, open_connection, serve_http, serve_tcp
from tests.net.netutil import DEADLINE, HOST, recv_until_eof, server_thread

pytestmark = pytest.mark.timeout(10)


async def echo(stream):
    while line := await stream.readline():
        await stream.write_all(line)


async def app(request):
    stream = await open_connection(HOST, echo_port)       # an app that awaits another service
    await stream.write_all(request.path.encode() + b"\n")
    line = await stream.readline()
    stream.close()
    return Response(200, b"echoed " + line.strip())


echo_port = None


def test_an_async_def_echo_server_and_client():
    async def client(port):
        stream = await open_connection(HOST, port)
        await stream.write_all(b"first\nsecond\n")
        got = [await stream.readline(), await stream.readline()]
        stream.close()
        return got

    def main():
        server = yield from serve_tcp(echo, HOST, 0)
        try:
            return (yield from kernel.with_context(kernel.Dispatchers.Main, client, server.port))
        finally:
            yield from server.shutdown()

    assert kernel.run(main) == [b"first\n", b"second\n"]


def test_an_async_def_main_awaits_serve_tcp_and_shutdown():
    async def main():
        server = await serve_tcp(echo, HOST, 0)
        stream = await open_connection(HOST, server.port)
        await stream.write_all(b"x\n")
        line = await stream.readline()
        stream.close()
        await server.shutdown()
        return line

    assert kernel.run(main) == b"x\n"


def test_an_async_def_http_app():
    global echo_port
    with server_thread(serve_tcp, echo, HOST, 0) as echo_server:
        echo_port = echo_server.port
        with server_thread(serve_http, app, HOST, 0) as http:
            with socket.create_connection((HOST, http.port), timeout=DEADLINE) as sock:
                sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                reply = recv_until_eof(sock)
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"echoed /ping"), reply


def public_generator_functions():
    """Every public generator function and method exported by net and rpc."""
    import inspect

    from genloop import net, rpc
    for module in (net, rpc):
        for name in module.__all__:
            obj = getattr(module, name)
            members = [(name, obj)] if inspect.isfunction(obj) else \
                [(f"{name}.{attr}", fn) for attr, fn in vars(obj).items() if inspect.isfunction(fn)] \
                if inspect.isclass(obj) else []
            for qualname, fn in members:
                if inspect.isgeneratorfunction(fn) and not qualname.rpartition(".")[2].startswith("_"):
                    yield qualname, fn


def test_every_public_suspending_call_of_net_and_rpc_can_be_awaited():
    import inspect
    found = list(public_generator_functions())
    assert len(found) > 20
    plain = [name for name, fn in found if not fn.__code__.co_flags & inspect.CO_ITERABLE_COROUTINE]
    assert not plain, f"not types.coroutine, so `await` fails: {plain}"
