"""blocking-loop: one slow handler on Main stalls every client; handed to a dispatcher, it stalls none.

The server answers `GET /fast` at once. `GET /slow` does `--seconds` of
CPU work (PBKDF2 rounds). With `--slow-on main` the handler calls it right
there, on the loop thread: until it returns no other task runs, so every
`/fast` waits for it, and the kernel's watchdog reports the slow step with
the line it is stuck on. With `--slow-on default` (or `io`) the handler says

    rounds = yield from with_context(Dispatchers.Default, hash_for, seconds)

and Main goes on answering `/fast` while a worker thread hashes (hashlib
lets go of the GIL while it hashes, as C-heavy work does).

`genloop demo run blocking-loop` also runs the clients: a probe that times
`/fast` every PROBE_EVERY seconds and prints it live, and a `/slow` every
SLOW_EVERY seconds; the watchdog's report goes to the log (stderr).
"""
import hashlib
import http.client
import threading
import time
from collections.abc import Callable
from typing import Annotated, Literal

import typer

from genloop.demos.options import HOST, PORT, Host, Port
from genloop.demos.serving import serve_until_interrupt
from genloop.kernel import Dispatchers, Event, Gen, Instrument, Task, run, with_context
from genloop.net.http import Response, serve_http

#: Seconds of work per /slow: long enough to see, short enough to wait for.
SLOW_SECONDS = 0.5
#: PBKDF2 iterations per round: a few milliseconds, so the work ends close to its time.
ITERATIONS = 10_000
PROBE_EVERY = 0.2
SLOW_EVERY = 3.0
#: A /fast slower than this is drawn with a bar.
NOTICEABLE = 0.02
PLACES = {"main": None, "default": Dispatchers.Default, "io": Dispatchers.IO}


def hash_for(seconds: float, started: threading.Event | None = None) -> int:
    """CPU work for about ``seconds``; returns the rounds done."""
    if started is not None:
        started.set()
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline:
        hashlib.pbkdf2_hmac("sha256", b"password", b"salt", ITERATIONS)
        rounds += 1
    return rounds


class SlowSteps(Instrument):
    """Keeps the watchdog's slow-step reports (it also logs them) for whoever asks."""

    def __init__(self) -> None:
        self.reports: list[str] = []

    def slow_step(self, task: Task, seconds: float, stack: list) -> None:
        where = f"{stack[-1].filename}:{stack[-1].lineno}" if stack else "?"
        self.reports.append(f"task {task.name!r} ran {seconds:.2f} s without yielding, at {where}")


def main(host: str, port: int, ready: threading.Event, stop: Event, slow_on: str, seconds: float,
         events: list[str]) -> Gen[None]:
    place = PLACES[slow_on]

    def app(request):
        if request.path == "/fast":
            events.append("fast")
            return Response(200, b"fast\n")
        if request.path == "/slow":
            events.append("slow-start")
            if place is None:
                rounds = hash_for(seconds, ready.slow_started)           # blocks Main
            else:
                rounds = yield from with_context(place, hash_for, seconds, ready.slow_started)
            events.append("slow-end")
            return Response(200, f"slow: {rounds} rounds on {slow_on}\n".encode())
        return Response(404, b"try /fast or /slow\n")

    server = yield from serve_http(app, host, port)
    ready.port = server.port
    ready.set()
    yield from stop.wait()
    yield from server.shutdown()


def serve(host: str, port: int, *, ready: threading.Event | None = None, stop: Event | None = None,
          slow_on: str = "main", seconds: float = SLOW_SECONDS) -> None:
    """The `demos.serving` entry. ``ready`` gets ``slow_started`` (set when /slow begins
    its work), ``events`` (what the app did, in order) and ``reports`` (slow steps)."""
    if slow_on not in PLACES:
        raise ValueError(f"--slow-on must be one of {sorted(PLACES)}, not {slow_on!r}")
    ready = ready or threading.Event()
    ready.slow_started, ready.events = threading.Event(), []
    watchdog = SlowSteps()
    ready.reports = watchdog.reports
    run(main, host, port, ready, stop or Event(), slow_on, seconds, ready.events, instruments=[watchdog])


def _get(connection, path) -> float:
    start = time.perf_counter()
    connection.request("GET", path)
    connection.getresponse().read()
    return time.perf_counter() - start


def _slow_client(serving, echo):
    connection = http.client.HTTPConnection(serving.host, serving.port)
    try:
        echo(f"GET /slow took {_get(connection, '/slow'):.2f} s")
    except OSError:
        pass                                  # the server stopped under it
    finally:
        connection.close()


def _probe(echo):
    def probe(serving):
        """Time /fast every PROBE_EVERY s and start a /slow every SLOW_EVERY s, until Ctrl-C."""
        connection = http.client.HTTPConnection(serving.host, serving.port)
        next_slow = time.monotonic()
        try:
            while True:
                if time.monotonic() >= next_slow:
                    threading.Thread(target=_slow_client, args=(serving, echo), daemon=True).start()
                    next_slow += SLOW_EVERY
                latency = _get(connection, "/fast")
                bar = "#" * int(latency / NOTICEABLE) if latency >= NOTICEABLE else ""
                echo(f"GET /fast {latency * 1e3:7.1f} ms {bar}")
                time.sleep(PROBE_EVERY)
        finally:
            connection.close()
    return probe


def demo(echo: Callable[[str], object] = print, host: Host = HOST, port: Port = PORT,
         slow_on: Annotated[Literal["main", "default", "io"], typer.Option(
             help="Where /slow runs its work: on Main (stalls everyone) or on a dispatcher.")] = "main",
         seconds: Annotated[float, typer.Option(min=0.01, help="Seconds of work per /slow.")] = SLOW_SECONDS) -> None:
    def banner(serving):
        return [f"blocking-loop: /slow works {seconds:g} s on {slow_on}; /fast answers at once "
                f"on {serving.url}", f"try:  curl {serving.url}/slow & curl {serving.url}/fast",
                f"timing /fast every {PROBE_EVERY:g} s and sending /slow every {SLOW_EVERY:g} s; Ctrl-C to stop"]
    serve_until_interrupt(serve, host, port, echo=echo, banner=banner, foreground=_probe(echo),
                          slow_on=slow_on, seconds=seconds)
