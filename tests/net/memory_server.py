"""A ``serve_http`` process for the memory tests: ``python -m tests.net.memory_server``.

Prints its port, then serves ``/big`` (100 KB, noting the ``X-Client`` it
came for), ``/seen`` (how many clients were answered), ``/stream?n=N`` (N
chunks of 1 MiB from a generator) and ``/produce?n=N`` (the same from a
producer coroutine), in an address space capped by ``netutil.cap_memory``.
"""
import sys

from genloop import run, sleep
from genloop.net import Response, serve_http
from tests.net.netutil import cap_memory

BIG = b"x" * 100_000
CHUNK = b"y" * (1 << 20)
seen = set()


def chunks(n):
    for _ in range(n):
        yield CHUNK


def producer(n):
    def produce(write):
        for _ in range(n):
            yield from sleep(0)            # as if each chunk came from I/O
            yield from write(CHUNK)
    return produce


def app(request):
    path, n = request.path, int(request.params.get("n", 0))
    if path == "/seen":
        return Response(200, b"%d" % len(seen))
    if path == "/stream":
        return Response(200, chunks(n))
    if path == "/produce":
        return Response(200, producer(n), (("Content-Length", n * len(CHUNK)),))
    seen.add(request.headers.get("x-client"))
    return Response(200, BIG)
    yield


def main():
    server = yield from serve_http(app, "127.0.0.1", 0, idle_timeout=60.0)
    print(server.port, flush=True)
    yield from server.serve_forever()


if __name__ == "__main__":
    cap_memory()
    sys.exit(run(main))
