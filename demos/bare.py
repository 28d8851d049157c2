"""What the four "before coroutines" servers share, so each module shows only its idea.

The article walks through the ways a server has juggled many clients before
coroutines: a process per connection (`fork_server`), a thread per connection
(`thread_server`), one thread multiplexing every socket with epoll
(`event_loop`), and an epoll loop feeding a worker pool (`reactor`). Each module
has the same entry point::

    serve(host, port, *, mode="http", ready=None, stop=None, ...) -> None

- `port` 0 picks a free port.
- Ready convention: once the socket listens, `serve` stores the bound port as
  `ready.port` and then sets `ready` (any `threading.Event`). Read `ready.port`
  only after `ready.wait()` returns True.
- `serve` runs until `stop` is set (it looks at least every `STOP_POLL`
  seconds; without `stop` it runs forever) and returns only once every socket,
  thread and child process it made is gone.
- `mode` picks the protocol: "http" is a minimal HTTP/1.1 hello world with
  keep-alive and pipelining (requests answered in order; closes on
  `Connection: close` or EOF; `Content-Length` bodies are read and dropped;
  chunked bodies are refused with 400); "echo" sends every line back.

The protocol code here is sans-IO: a framer cuts the byte stream into requests
and `Mode.reply` turns a request into bytes, so the servers differ only in how
they wait for sockets. The request-head parser is deliberately tiny; the real
one (httptools, limits, timeouts) lives in `net`.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

STOP_POLL = 0.2  # seconds between looks at `stop` (the contract says at most 0.2)
RECV_SIZE = 64 * 1024  # one recv() per readiness; large enough for many pipelined requests
BACKLOG = socket.SOMAXCONN  # the kernel caps it at net.core.somaxconn
MAX_HEAD = 8 * 1024  # request heads above this are refused, like most servers' default
MAX_LINE = 64 * 1024  # echo: a longer line is echoed in pieces instead of buffered whole

HELLO = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 13\r\n"
    b"\r\n"
    b"Hello, world!"
)
HELLO_CLOSE = HELLO.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Content-Length: 0\r\n"
    b"Connection: close\r\n"
    b"\r\n"
)


@dataclass(slots=True)
class Request:
    method: bytes
    target: bytes
    version: bytes
    headers: dict[bytes, bytes]  # lower-cased names
    keep_alive: bool
    content_length: int = 0
    bad: bool = False  # malformed or unsupported: answered with 400, then the connection closes

    @classmethod
    def refused(cls) -> Request:
        return cls(b"", b"", b"", {}, keep_alive=False, bad=True)


def parse_head(head: bytes) -> Request:
    """Parse a request line and headers (without the final blank line)."""
    try:
        request_line, *header_lines = head.split(b"\r\n")
        method, target, version = request_line.split(b" ")
        headers = {}
        for line in header_lines:
            name, value = line.split(b":", 1)
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0"))
        if not version.startswith(b"HTTP/1.") or length < 0 or b"transfer-encoding" in headers:
            raise ValueError("unsupported request")
    except ValueError:
        return Request.refused()
    # HTTP/1.0 keep-alive would need its own reply header: answer 1.0 and close.
    keep_alive = version == b"HTTP/1.1" and headers.get(b"connection", b"").lower() != b"close"
    return Request(method, target, version, headers, keep_alive, length)


class HttpFramer:
    """Cut a byte stream into requests; Content-Length bodies are consumed and dropped."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.body_left = 0
        self.finished = False  # a request asked to close: nothing after it is read

    def feed(self, data: bytes) -> list[Request]:
        self.buffer += data
        requests = []
        while not self.finished:
            if self.body_left:
                dropped = min(self.body_left, len(self.buffer))
                del self.buffer[:dropped]
                self.body_left -= dropped
                if self.body_left:
                    break
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    requests.append(Request.refused())
                    self.finished = True
                break
            request = parse_head(bytes(self.buffer[:end]))
            del self.buffer[: end + 4]
            self.body_left = request.content_length
            self.finished = not request.keep_alive
            requests.append(request)
        return requests


def http_reply(request: Request) -> bytes:
    if request.bad:
        return BAD_REQUEST
    return HELLO if request.keep_alive else HELLO_CLOSE


class LineFramer:
    """Cut a byte stream into lines (each keeps its b"\\n")."""

    finished = False  # echo never closes first: the client decides

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        *lines, rest = self.buffer.split(b"\n")
        self.buffer = bytearray(rest)
        lines = [line + b"\n" for line in lines]
        if len(self.buffer) > MAX_LINE:
            lines.append(bytes(self.buffer))
            self.buffer.clear()
        return lines


def echo_reply(line: bytes) -> bytes:
    return line


@dataclass(frozen=True, slots=True)
class Mode:
    """A protocol: `framer()` makes per-connection state, `reply(request)` the answer.

    A connection closes once `framer.finished` is true and every reply is written.
    """

    framer: Callable[[], HttpFramer | LineFramer]
    reply: Callable[[object], bytes]


MODES = {"http": Mode(HttpFramer, http_reply), "echo": Mode(LineFramer, echo_reply)}


def get_mode(name: str) -> Mode:
    try:
        return MODES[name]
    except KeyError:
        raise ValueError(f"unknown mode {name!r}; choose from {sorted(MODES)}") from None


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket (SO_REUSEADDR so a restarted demo can rebind at once)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def announce(ready: threading.Event | None, listener: socket.socket) -> None:
    """The ready convention: `ready.port` holds the bound port before `ready` is set."""
    if ready is not None:
        ready.port = listener.getsockname()[1]
        ready.set()


def accepted(listener: socket.socket, stop: threading.Event) -> Iterator[socket.socket | None]:
    """Blocking accept loop: yield each new connection, or None every STOP_POLL
    seconds of quiet (a chance to reap), until `stop` is set."""
    listener.settimeout(STOP_POLL)  # accepted sockets stay blocking (default timeout is None)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            yield None
        else:
            yield conn


def serve_connection(conn: socket.socket, mode: Mode) -> None:
    """The blocking per-connection loop of the fork and thread servers: read,
    answer every complete request in order, stop at EOF or when the protocol
    says so. The caller owns (and closes) `conn`."""
    framer = mode.framer()
    try:
        while not framer.finished:
            data = conn.recv(RECV_SIZE)
            if not data:
                return
            if requests := framer.feed(data):
                conn.sendall(b"".join(map(mode.reply, requests)))
    except OSError:  # reset by the peer, or shut down by the server stopping
        pass


def main(serve: Callable[..., None]) -> None:
    """`python -m genloop.demos.NAME [port] [http|echo]`: serve on 127.0.0.1 until Ctrl-C."""
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    mode = sys.argv[2] if len(sys.argv) > 2 else "http"
    ready, stop = threading.Event(), threading.Event()
    server = threading.Thread(target=serve, args=("127.0.0.1", port),
                              kwargs=dict(mode=mode, ready=ready, stop=stop))
    server.start()
    try:
        while server.is_alive() and not ready.wait(STOP_POLL):
            pass
        if ready.is_set():
            print(f"{mode} on 127.0.0.1:{ready.port}, Ctrl-C to stop", flush=True)
        server.join()
    except KeyboardInterrupt:
        stop.set()
        server.join()
