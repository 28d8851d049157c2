"""The four "before coroutines" demo servers: same protocol, same clean stop."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import threading
import time

import pytest

from genloop.demos import bare, event_loop, fork_server, reactor, thread_server

SERVERS = [fork_server, thread_server, event_loop, reactor]
DEADLINE = 5.0  # seconds; every wait is bounded by it, none sleeps "long enough"
GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def child_pids() -> set[str]:
    """Children (zombies included) of every thread of this process."""
    pids = set()
    for tid in os.listdir("/proc/self/task"):
        # A joined thread's task can still be on its way out; its children, if
        # any, pass to a live thread of the process, so skipping it loses none.
        with contextlib.suppress(FileNotFoundError), open(f"/proc/self/task/{tid}/children") as f:
            pids.update(f.read().split())
    return pids


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def wait_until(condition) -> bool:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@contextlib.contextmanager
def running(module, mode="http"):
    """Serve in a thread; yield the port; on exit stop it and check nothing leaked."""
    # Compared with what existed before, so other tests' leftovers do not count.
    threads_before, children_before, fds_before = set(threading.enumerate()), child_pids(), open_fds()
    ready, stop = threading.Event(), threading.Event()
    server = threading.Thread(target=module.serve, args=("127.0.0.1", 0),
                              kwargs=dict(mode=mode, ready=ready, stop=stop), daemon=True)
    server.start()
    try:
        assert ready.wait(DEADLINE), "server never became ready"
        yield ready.port
    finally:
        stop.set()
        server.join(DEADLINE)
    assert not server.is_alive(), "serve() did not return after stop"
    assert set(threading.enumerate()) <= threads_before, "threads left behind"
    assert child_pids() <= children_before, "child processes left behind"
    assert wait_until(lambda: open_fds() <= fds_before), "file descriptors left behind"


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"EOF after {data!r}"
        data += chunk
    return data


def assert_eof(sock: socket.socket) -> None:
    try:
        assert sock.recv(1) == b""
    except ConnectionResetError:
        pass


@pytest.fixture(params=SERVERS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def module(request):
    return request.param


def get(client: http.client.HTTPConnection) -> bytes:
    client.request("GET", "/")
    response = client.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Length") == "13"
    return response.read()


def test_keep_alive_with_http_client(module):
    with running(module) as port:
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
        try:
            assert get(client) == b"Hello, world!"
            first_socket = client.sock
            assert get(client) == b"Hello, world!"
            assert client.sock is first_socket, "the connection was not kept alive"
        finally:
            client.close()


def test_pipelined_requests_in_one_send(module):
    post = b"POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\nGET /x\r\n\r\n"
    last = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    with running(module) as port, connect(port) as sock:
        sock.sendall(GET + post + last)  # the POST body looks like a request: it must be skipped
        replies = recv_exactly(sock, 2 * len(bare.HELLO) + len(bare.HELLO_CLOSE))
        assert replies == bare.HELLO * 2 + bare.HELLO_CLOSE
        assert_eof(sock)


def test_garbage_gets_400_and_close(module):
    with running(module) as port, connect(port) as sock:
        sock.sendall(b"HELLO THERE\r\n\r\n" + GET)
        assert recv_exactly(sock, len(bare.BAD_REQUEST)) == bare.BAD_REQUEST
        assert_eof(sock)


def test_echo_lines(module):
    with running(module, mode="echo") as port, connect(port) as sock:
        sock.sendall(b"one\ntwo\nthr")
        assert recv_exactly(sock, 8) == b"one\ntwo\n"
        sock.sendall(b"ee\n")
        assert recv_exactly(sock, 6) == b"three\n"


def test_eof_closes_and_frees_the_connection(module):
    children_before = child_pids()
    with running(module) as port:
        with connect(port) as sock:
            sock.sendall(GET)
            sock.shutdown(socket.SHUT_WR)  # the request, then EOF: still answered
            assert recv_exactly(sock, len(bare.HELLO)) == bare.HELLO
            assert_eof(sock)
        assert wait_until(lambda: child_pids() <= children_before), "a finished child was not reaped"


def test_stop_with_a_client_still_connected(module):
    children_before = child_pids()
    with socket.socket() as sock:  # made before running() counts file descriptors
        sock.settimeout(DEADLINE)
        with running(module) as port:
            sock.connect(("127.0.0.1", port))
            sock.sendall(GET)
            assert recv_exactly(sock, len(bare.HELLO)) == bare.HELLO
            if module is fork_server:
                assert len(child_pids() - children_before) == 1
        # running() stopped the server with this client idle on it and checked
        # that no thread, child or socket outlived serve(); the client sees EOF.
        assert_eof(sock)


def test_unknown_mode_is_refused(module):
    with pytest.raises(ValueError, match="unknown mode"):
        module.serve("127.0.0.1", 0, mode="gopher")
