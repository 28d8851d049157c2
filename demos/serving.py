"""Start a demo server from code and stop it cleanly; or run one until Ctrl-C.

Every server demo has the entry point of the bare servers (`demos.bare`)::

    serve(host, port, *, ready, stop, **options)

It stores what a client needs on `ready` (`ready.port`, and more for some
demos), then sets it; it runs until `stop` is set and returns only once
everything it made is gone. `stop` is a `kernel.Event`, so the bare servers
poll its `is_set()` while coroutines `yield from stop.wait()`.

`Serving` runs `serve` on a thread of its own: tests use it to start a demo,
talk to it and stop it, and `genloop demo run` uses it to serve until Ctrl-C.
"""
import signal
import threading
from collections.abc import Callable
from typing import Any

from genloop.kernel import Event

#: Seconds a demo may take to listen: the search demo first generates its database.
READY_TIMEOUT = 60.0
#: Seconds a demo may take to stop (the bare servers look at `stop` every 0.2 s).
STOP_TIMEOUT = 10.0

#: Called with the port once `serve_until_interrupt` listens; `genloop demo run --peer`
#: adds the `READY <port>` line the bench harness waits for.
on_listening = []


class Ready(threading.Event):
    """The ready flag, and what the server tells about itself once it listens."""

    port = None


class Serving:
    """A demo server on a background thread: ``with Serving(module.serve, port=0) as s: ... s.port``."""

    def __init__(self, serve: Callable[..., None], host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        self.serve, self.host, self.options = serve, host, options
        self.requested_port = port
        self.ready = Ready()
        self.stopping = Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, name=f"serving-{serve.__module__}", daemon=True)

    @property
    def port(self) -> int:
        return self.ready.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self):
        try:
            self.serve(self.host, self.requested_port, ready=self.ready, stop=self.stopping, **self.options)
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits for the server
            self.error = e
        finally:
            self.ready.set()        # wakes start() even if serve failed before listening

    def start(self) -> "Serving":
        """Start serving; return once it listens, or raise why it could not."""
        self.thread.start()
        if not self.ready.wait(READY_TIMEOUT):
            self.stop()
            raise TimeoutError(f"{self.serve.__module__} did not listen within {READY_TIMEOUT} s")
        if self.error is not None or self.port is None:
            self.thread.join(STOP_TIMEOUT)
            raise self.error or RuntimeError(f"{self.serve.__module__} ended before listening")
        return self

    def wait(self) -> None:
        """Block until the server ends (Ctrl-C interrupts); re-raise what ended it."""
        self.thread.join()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Ask the server to stop and wait until it has."""
        self.stopping.set()
        self.thread.join(STOP_TIMEOUT)
        if self.thread.is_alive():
            raise RuntimeError(f"{self.serve.__module__} did not stop within {STOP_TIMEOUT} s")

    def __enter__(self) -> "Serving":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve_until_interrupt(serve: Callable[..., None], host: str, port: int, *, echo: Callable[[str], object],
                          banner: Callable[[Serving], list[str]],
                          foreground: Callable[[Serving], None] = Serving.wait, **options: Any) -> None:
    """Serve until Ctrl-C (or SIGTERM); ``banner(serving)`` gives the lines printed once it listens.

    Meanwhile this thread runs ``foreground(serving)``: by default it waits
    for the server; a demo may drive a client here instead.
    """
    previous = signal.signal(signal.SIGTERM, _interrupt)   # `kill` stops it as cleanly as Ctrl-C
    try:
        with Serving(serve, host, port, **options) as serving:
            for hook in on_listening:     # first: a reader of the READY line wants it on line one
                hook(serving.port)
            for line in banner(serving):
                echo(line)
            foreground(serving)
    except KeyboardInterrupt:
        echo("stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)
