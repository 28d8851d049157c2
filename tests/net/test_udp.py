"""Datagrams: Socket.recvfrom / sendto and open_datagram, against a plain socket peer."""
import socket
import threading

import pytest

from genloop import kernel
from genloop.kernel import spawn
from genloop.net import open_datagram
from tests.net.netutil import DEADLINE, HOST, until

pytestmark = pytest.mark.timeout(10)


def test_an_endpoint_waits_for_datagrams_and_answers_a_plain_socket():
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.settimeout(DEADLINE)
    peer.bind((HOST, 0))

    def serve(ep, count):
        for _ in range(count):
            data, addr = yield from ep.recvfrom()
            yield from ep.sendto(data.upper(), addr)

    def main():
        ep = yield from open_datagram(HOST, 0)
        server = yield from spawn(serve, ep, 3)
        yield from until(lambda: server.state == "waiting", "the endpoint to wait in recvfrom")
        replies = []

        def exchange():
            for word in (b"one", b"two", b"three"):
                peer.sendto(word, (HOST, ep.port))
                replies.append(peer.recvfrom(100))

        thread = threading.Thread(target=exchange)
        thread.start()
        yield from server.join()
        thread.join(DEADLINE)
        ep.close()
        return replies

    replies = kernel.run(main)
    assert [data for data, _ in replies] == [b"ONE", b"TWO", b"THREE"]
    peer.close()


def test_a_connected_endpoint_sends_and_receives_with_its_remote():
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.settimeout(DEADLINE)
    peer.bind((HOST, 0))

    def main():
        ep = yield from open_datagram(HOST, 0, remote=peer.getsockname())
        yield from ep.send(b"hi")
        data, addr = peer.recvfrom(100)
        peer.sendto(data + b" back", addr)
        reply = yield from ep.recv()
        ep.close()
        return data, addr[1] == ep.port, reply

    assert kernel.run(main) == (b"hi", True, b"hi back")
    peer.close()


async def async_echo_once(ep):
    data, addr = await ep.recvfrom()
    await ep.sendto(data, addr)


def test_datagram_calls_can_be_awaited():
    def main():
        ep = yield from open_datagram(HOST, 0)
        task = yield from spawn(async_echo_once, ep)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.settimeout(DEADLINE)
            peer.sendto(b"await", (HOST, ep.port))
            yield from task.join()
            reply = peer.recv(100)
        ep.close()
        return reply

    assert kernel.run(main) == b"await"


def test_send_needs_a_remote():
    def main():
        ep = yield from open_datagram(HOST, 0)
        try:
            yield from ep.send(b"x")
        finally:
            ep.close()

    with pytest.raises(ValueError, match="no remote"):
        kernel.run(main)
