"""An rpc ``Server`` process for the memory tests: ``python -m tests.rpc.memory_server``.

Prints its port, then serves ``big`` (a plain method answering 100 KB),
``park`` (a coroutine that waits a minute) and ``count`` (how many ``park``
calls have started), in an address space capped by ``netutil.cap_memory``.
"""
import sys

from genloop import run, sleep
from genloop.rpc import Server
from tests.net.netutil import cap_memory

BIG = b"x" * 100_000
started = 0


def park():
    global started
    started += 1
    yield from sleep(60)


def main():
    server = Server()
    server.register("big", lambda: BIG)
    server.register("park", park)
    server.register("count", lambda: started)
    tcp = yield from server.start("127.0.0.1", 0)
    print(tcp.port, flush=True)
    yield from tcp.serve_forever()


if __name__ == "__main__":
    cap_memory()
    sys.exit(run(main))
