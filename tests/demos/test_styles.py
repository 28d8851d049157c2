"""The five server styles as demos: each answers a real client in both modes and stops cleanly."""
import http.client
import socket

import pytest

from genloop.demos import coroutines
from genloop.demos.styles import STYLES
from tests.demos.demo_helpers import DEADLINE, serving


@pytest.fixture(params=list(STYLES))
def serve(request):
    return STYLES[request.param][0]


def test_http_hello_with_keep_alive(serve):
    with serving(serve, mode="http") as server:
        client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE)
        try:
            for _ in range(2):
                client.request("GET", "/")
                response = client.getresponse()
                assert (response.status, response.read()) == (200, b"Hello, world!")
        finally:
            client.close()


def test_echo_lines(serve):
    with serving(serve, mode="echo") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as sock:
            sock.sendall(b"one\ntw")
            sock.sendall(b"o\n")
            got = b""
            while got.count(b"\n") < 2:
                chunk = sock.recv(100)
                assert chunk, f"EOF after {got!r}"
                got += chunk
            assert got == b"one\ntwo\n"


def test_stop_with_a_client_still_connected(serve):
    with socket.socket() as sock:                    # made before serving() counts descriptors
        sock.settimeout(DEADLINE)
        with serving(serve, mode="http") as server:
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert sock.recv(1000).endswith(b"Hello, world!")
        assert sock.recv(1) == b""                   # the server went, and closed its end


def test_coroutines_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="unknown mode"):
        coroutines.serve("127.0.0.1", 0, mode="gopher")
