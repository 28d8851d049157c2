"""04 · an echo server and two clients on real sockets, one thread.

    genloop step 04            (or: python demos/teach/04_echo_server.py)

What to watch:
- `serve_tcp` spawns an accept loop; each connection gets its own handler
  task (`tcp:PORT`). All of them, and both clients, share the Main thread.
- The I/O waits column: a task whose `recv` found nothing "waits until fd N is
  readable" and sits in the poller, not in a run queue. When no task can run,
  the stepper polls the real sockets, and the kernel wakes whoever's fd is ready.
- The two clients' lines interleave: while one waits for its echo, the other runs.
"""
from genloop.kernel import run, spawn
from genloop.net import open_connection, serve_tcp


def echo(stream):
    while line := (yield from stream.readline()):
        yield from stream.write_all(line)


def client(port, words):
    stream = yield from open_connection("127.0.0.1", port)
    replies = []
    try:
        for word in words:
            yield from stream.write_all(word.encode() + b"\n")
            replies.append((yield from stream.readline()).decode().strip())
    finally:
        stream.close()
    return " ".join(replies)


def main():
    server = yield from serve_tcp(echo, "127.0.0.1", 0)
    a = yield from spawn(client, server.port, ["one", "two"], name="client-a")
    b = yield from spawn(client, server.port, ["uno", "dos"], name="client-b")
    replies = [(yield from a.join()), (yield from b.join())]
    yield from server.shutdown()
    return replies


if __name__ == "__main__":
    print(run(main))
