"""serve_tcp's accept loop and idle timeout under clients that hold slots, bursts and fd exhaustion."""
import errno
import logging
import socket
import time

import pytest

from genloop import kernel
from genloop.kernel import Instrument, VirtualClock, sleep
from genloop.net import Server, Socket, listen, serve_tcp
from genloop.net.tcp import ACCEPT_BATCH, ACCEPT_ERROR_EVERY
from tests.net.netutil import DEADLINE, HOST, until

pytestmark = pytest.mark.timeout(20)


def echo(stream):
    while data := (yield from stream.socket.recv(4096)):
        yield from stream.write_all(data)


def test_idle_clients_do_not_hold_every_slot():
    def main():
        server = yield from serve_tcp(echo, HOST, 0, max_connections=2, idle_timeout=0.2)
        idle = [socket.create_connection((HOST, server.port)) for _ in range(2)]
        yield from until(lambda: server.accepted == 2, "the idle clients to be accepted")
        late = socket.create_connection((HOST, server.port))
        late.setblocking(False)
        late.send(b"hello")
        yield from until(lambda: server.accepted == 3, "a slot to free up")
        got = b""
        deadline = time.monotonic() + DEADLINE
        while got != b"hello" and time.monotonic() < deadline:
            try:
                got += late.recv(100)
            except BlockingIOError:
                yield from sleep(0.01)
        for s in [*idle, late]:
            s.close()
        yield from server.shutdown(0)
        return got

    assert kernel.run(main) == b"hello"


def test_a_busy_connection_is_not_idle():
    def main():
        server = yield from serve_tcp(echo, HOST, 0, idle_timeout=0.2)
        client = socket.create_connection((HOST, server.port), timeout=DEADLINE)
        client.setblocking(False)
        echoed = 0
        start = time.monotonic()
        while time.monotonic() - start < 0.6:           # three timeouts' worth of steady traffic
            client.send(b"x")
            yield from until(lambda: _recv_some(client), "the echo")
            echoed += 1
            yield from sleep(0.05)
        client.close()
        yield from server.shutdown(0)
        return echoed

    assert kernel.run(main) >= 5


def _recv_some(sock):
    try:
        return sock.recv(100)
    except BlockingIOError:
        return b""


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_close_logs_no_accept_failure(caplog, turns):
    def main():
        server = yield from serve_tcp(echo, HOST, 0)
        yield from sleep(0.01)                              # the accept loop waits on the listener
        client = socket.create_connection((HOST, server.port))
        for _ in range(turns):                              # the poller wakes the accept loop meanwhile
            yield
        server.close()
        yield from sleep(0.05)
        client.close()

    with caplog.at_level(logging.DEBUG, logger="genloop.net"):
        kernel.run(main)
    assert not [r for r in caplog.records if "accept failed" in r.getMessage()]


class _OutOfFiles(socket.socket):
    """A listener whose accept always fails as a process out of descriptors does."""

    def accept(self):
        raise OSError(errno.EMFILE, "Too many open files")


def test_a_failing_accept_is_reported_at_a_bounded_rate(caplog):
    seconds = 4 * ACCEPT_ERROR_EVERY

    def main():
        plain = listen(HOST, 0)
        server = Server(echo, Socket(_OutOfFiles(fileno=plain.sock.detach())))
        yield from server.start()
        yield from sleep(seconds)
        server.close()

    with caplog.at_level(logging.ERROR, logger="genloop.net"):
        kernel.run(main, clock=VirtualClock())
    reports = [r.getMessage() for r in caplog.records if "accept failed" in r.getMessage()]
    assert 1 <= len(reports) <= seconds / ACCEPT_ERROR_EVERY + 1
    assert "Too many open files" in reports[0]


def test_a_burst_of_connections_is_accepted_a_batch_per_step():
    class AcceptsPerStep(Instrument):
        def __init__(self):
            self.most = self.before = 0

        def before_step(self, task):
            if "-accept" in task.name:
                self.before = server.accepted

        def after_step(self, task, trap):
            if "-accept" in task.name:
                self.most = max(self.most, server.accepted - self.before)

    counter = AcceptsPerStep()
    server = None

    def main():
        nonlocal server
        server = yield from serve_tcp(echo, HOST, 0)
        clients = [socket.create_connection((HOST, server.port)) for _ in range(5 * ACCEPT_BATCH)]
        yield from until(lambda: server.accepted == len(clients), "every client to be accepted")
        for c in clients:
            c.close()
        yield from server.shutdown(0)

    kernel.run(main, instruments=[counter])
    assert counter.most == ACCEPT_BATCH
