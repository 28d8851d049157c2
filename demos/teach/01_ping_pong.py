"""01 · ping-pong: two coroutines take turns on one thread.

    genloop step 01            (or: python demos/teach/01_ping_pong.py)

What to watch:
- Every step is on the Main lane: one thread, three coroutines, never two at once.
- A task runs until it yields. "waits to get from an empty Queue" is the moment
  it hands the thread back; nothing pre-empts it.
- The run queue: as soon as one player puts the ball, the other leaves its
  wait and appears in Main's queue; it runs once the first one yields.
- The clock stays at 0: nothing here sleeps; every switch is a yield.
"""
from genloop.kernel import Queue, run, spawn

RALLIES = 3


def player(name, inbox, outbox):
    for _ in range(RALLIES):
        ball = yield from inbox.get()           # park until the other side hits the ball
        yield from outbox.put(ball + [name])    # wakes the other player


def main():
    to_ping, to_pong = Queue(), Queue()
    ping = yield from spawn(player, "ping", to_ping, to_pong, name="ping")
    yield from spawn(player, "pong", to_pong, to_ping, name="pong")
    yield from to_ping.put(["serve"])
    yield from ping.join()
    ball = yield from to_ping.get()             # pong's last return
    return " -> ".join(ball)


if __name__ == "__main__":
    print(run(main))
