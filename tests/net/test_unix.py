"""Unix domain stream sockets: serve_unix / open_unix_connection and the path= forms."""
import os
import socket
import stat

import pytest

from genloop import kernel
from genloop.net import Server, Socket, open_connection, open_unix_connection, serve_http, serve_tcp, serve_unix
from genloop.net.http import Response
from tests.net.netutil import DEADLINE, recv_until_eof, server_thread

pytestmark = pytest.mark.timeout(10)


def line_echo(stream):
    while line := (yield from stream.readline()):
        yield from stream.write_all(line)


def test_serve_tcp_on_a_unix_listener_keeps_accepting(tmp_path):
    path = str(tmp_path / "echo.sock")

    def main():
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.bind(path)
        raw.listen()
        server = yield from Server(line_echo, Socket(raw)).start()
        got = []
        for i in range(3):          # the accept task must survive each unnamed Unix peer
            stream = yield from open_unix_connection(path)
            yield from stream.write_all(b"hello %d\n" % i)
            got.append((yield from stream.readline()))
            stream.close()
        assert server.port is None and server.address == path
        yield from server.shutdown()
        return got

    assert kernel.run(main) == [b"hello 0\n", b"hello 1\n", b"hello 2\n"]


def test_serve_unix_replaces_a_stale_socket_file_and_removes_its_own(tmp_path):
    path = str(tmp_path / "svc.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)           # a file left by a process that died without cleaning up
    stale.close()

    def main():
        server = yield from serve_unix(line_echo, path)
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        stream = yield from open_connection(path=path)
        yield from stream.write_all(b"ping\n")
        line = yield from stream.readline()
        stream.close()
        yield from server.shutdown()
        return line, os.path.exists(path)

    assert kernel.run(main) == (b"ping\n", False)


def test_serve_unix_refuses_to_replace_a_file_that_is_not_a_socket(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("precious")

    def main():
        yield from serve_unix(line_echo, str(path))

    with pytest.raises(FileExistsError):
        kernel.run(main)
    assert path.read_text() == "precious"


def test_serve_http_on_a_unix_socket_answers_a_plain_client(tmp_path):
    path = str(tmp_path / "http.sock")

    def hello(request):
        return Response(200, b"over unix " + request.path.encode())
        yield

    with server_thread(serve_http, hello, path=path) as server:
        assert server.port is None
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(DEADLINE)
            sock.connect(path)
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: u\r\nConnection: close\r\n\r\n")
            reply = recv_until_eof(sock)
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"over unix /x"), reply


def test_a_unix_server_closed_by_another_process_is_not_unlinked(tmp_path):
    """The socket file is removed only if it is still the one this server bound."""
    path = str(tmp_path / "s.sock")

    def main():
        server = yield from serve_tcp(line_echo, path=path)
        os.unlink(path)
        other = socket.socket(socket.AF_UNIX)
        other.bind(path)                 # someone else's server now owns the name
        server.close()
        exists = os.path.exists(path)
        other.close()
        return exists

    assert kernel.run(main) is True


def test_an_abstract_socket_name_needs_no_file():
    name = f"\0genloop-test-{os.getpid()}"

    def main():
        server = yield from serve_unix(line_echo, name)
        stream = yield from open_unix_connection(name)
        yield from stream.write_all(b"abstract\n")
        line = yield from stream.readline()
        stream.close()
        server.close()
        return line

    assert kernel.run(main) == b"abstract\n"
