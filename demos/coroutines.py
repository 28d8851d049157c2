"""Coroutines: the same hello/echo server, written as plain sequential code on genloop.

The event loop and the reactor scale because nothing blocks the loop thread,
but their logic is cut into callbacks with the state of each client kept by
hand. Here each connection is a task whose handler reads like the thread
server's (read a line, write it back) while it runs on the one Main thread:
every read that would block parks the task on epoll and lets the others run.

    def echo(stream):
        while line := (yield from stream.readline()):
            yield from stream.write_all(line)

HTTP goes through `net.serve_http` (httptools, keep-alive, pipelining) and
answers the bytes the bare servers answer. See `demos.bare` for the `serve`
contract.
"""
import threading

from genloop.demos import bare
from genloop.kernel import Event, Gen, current_task, run
from genloop.net import Request, Stream, serve_tcp
from genloop.net.http import Response, serve_http

HELLO = Response(200, b"Hello, world!", (("Content-Type", "text/plain"),))


def hello(request: Request) -> Response:
    return HELLO


def echo(stream: Stream) -> Gen[None]:
    while line := (yield from stream.readline()):
        yield from stream.write_all(line)


def told(handler, stage):
    """``handler`` saying which task and worker serve the connections the demo tells about."""
    def handle(stream: Stream) -> Gen[None]:
        if stage.tell():
            task = yield from current_task()
            stage(f"coroutines: {stream.peer[0]}:{stream.peer[1]} -> task #{task.id} {task.name} "
                  f"on {task.dispatcher.name}'s thread {threading.current_thread().name}")
        return (yield from handler(stream))
    return handle


def main(host: str, port: int, mode: str, ready: threading.Event, stop: Event, stage=None) -> Gen[None]:
    if mode == "http":
        server = yield from serve_http(hello, host, port)
    else:
        server = yield from serve_tcp(echo, host, port)
    if stage is not None:
        server.handler = told(server.handler, stage)
    ready.port = server.port
    ready.set()
    yield from stop.wait()
    yield from server.shutdown()


def serve(host: str, port: int, *, mode: str = "http", ready: threading.Event | None = None,
          stop: Event | None = None, stage=None) -> None:
    bare.get_mode(mode)                        # the same modes, the same refusal
    run(main, host, port, mode, ready or threading.Event(), stop or Event(), stage)
