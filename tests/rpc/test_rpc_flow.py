"""Flow control: a peer whose own calls are stuck in its send queue still reads answers.

If a reader stopped reading while its *own requests* waited to be sent, two
peers calling each other with big payloads would each wait for the other to
read: a deadlock. Only work the peer asks of us may pause our reader.
"""
import socket
import threading

import msgpack

from genloop import kernel, rpc
from genloop.kernel import Future, spawn, timeout_after
from genloop.rpc.peer import HIGH_WATER
from tests.rpc.rpcutil import DEADLINE, HOST, wait_thread_event

#: Larger than any socket buffer pair on loopback (the server's receive buffer is
#: shrunk below), so the client's writer blocks for good with it half sent.
STUCK_PAYLOAD = 16 * 1024 * 1024
SMALL_RCVBUF = 64 * 1024


def test_reader_keeps_reading_answers_while_own_calls_are_queued():
    # A plain server that reads one byte, then never again, and answers blindly:
    # msgid 0 is the huge stuck call, msgid 1 a call queued behind it.
    listener = socket.create_server((HOST, 0))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
    started, answer_second, answer_first, finished = (threading.Event() for _ in range(4))

    def serve():
        conn, _ = listener.accept()
        with conn:
            conn.recv(1)
            started.set()
            answer_second.wait(DEADLINE)
            conn.sendall(msgpack.packb([1, 1, None, "second"]))
            answer_first.wait(DEADLINE)
            conn.sendall(msgpack.packb([1, 0, None, "first"]))
            finished.wait(DEADLINE)

    thread = threading.Thread(target=serve)
    thread.start()

    def main():
        client = yield from rpc.connect(HOST, listener.getsockname()[1])
        try:
            first = yield from spawn(client.call, "stuck", b"x" * STUCK_PAYLOAD)
            yield from wait_thread_event(started)      # the writer holds the big call now
            second = Future()        # call_cb queues the call before it returns
            client.call_cb("queued", [b"y" * (HIGH_WATER + 1)], lambda result, error: second.set_result(result))
            answer_second.set()
            assert (yield from timeout_after(DEADLINE, second.wait)) == "second"
            answer_first.set()                          # arrives in a later read
            return (yield from timeout_after(DEADLINE, first.join))
        finally:
            finished.set()
            client.close()

    try:
        assert kernel.run(main) == "first"
    finally:
        finished.set()
        thread.join(DEADLINE)
        listener.close()
