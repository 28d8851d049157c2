"""A server's tasks are named when it starts: which server, which port."""
from genloop import kernel
from genloop.net import serve_http, serve_tcp
from genloop.rpc import Server as RpcServer


def _echo(stream):
    yield from stream.write_all((yield from stream.readline()))


def _app(request):
    return None
    yield  # pragma: no cover - a generator function


def test_each_servers_accept_task_names_the_server_and_its_port():
    def main():
        tcp = yield from serve_tcp(_echo, "127.0.0.1", 0)
        echo = yield from serve_tcp(_echo, "127.0.0.1", 0, name="echo")
        http = yield from serve_http(_app, "127.0.0.1", 0)
        rpc = yield from RpcServer(name="users").start("127.0.0.1", 0)
        servers = (tcp, echo, http, rpc)
        names = [s._services[0].name for s in servers]
        for s in servers:
            s.close()
        return names, [s.port for s in servers]

    names, (tcp, echo, http, rpc) = kernel.run(main)
    assert names == [f"tcp-accept :{tcp}", f"echo-accept :{echo}", f"http-accept :{http}", f"users-accept :{rpc}"]
