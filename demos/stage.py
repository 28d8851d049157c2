"""What each server demo says about its stage, per connection: the first few, or every one with --verbose.

The five hello servers answer the same bytes; what differs is who serves a
client: a process (fork), a thread (threads), a turn of one epoll loop
(event-loop), a loop and a worker (reactor), a task on a worker (coroutines).
A ``Stage`` is what they tell it through; a server given none tells nothing
and pays nothing (the benchmarks run them so).
"""
import threading

#: Connections a demo tells about, unless --verbose.
FIRST_CONNECTIONS = 3


class Stage:
    """Prints lines about connections through ``echo``; ``tell()`` says whether this connection is one to tell about."""

    def __init__(self, echo, verbose: bool = False, first: int = FIRST_CONNECTIONS):
        self.echo = echo
        self.verbose = verbose
        self.first = first
        self.connections = 0
        self._lock = threading.Lock()

    def tell(self) -> bool:
        """Count a new connection; True if the demo should tell about it."""
        with self._lock:
            self.connections += 1
            number = self.connections
        if self.verbose or number <= self.first:
            return True
        if number == self.first + 1:
            self.echo(f"(the first {self.first} connections told; --verbose tells about every one)")
        return False

    def __call__(self, text: str) -> None:
        self.echo(text)


def peer(sock) -> str:
    """``host:port`` of the client on ``sock``, or "?" once it is gone."""
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"
