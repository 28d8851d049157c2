"""TCP: ``open_connection``, ``serve_tcp`` and the ``Server`` it returns."""
import logging
import socket as _socket
import threading
import time

from genloop.kernel import Cancelled, Event, Semaphore, TaskGroup, current_kernel, current_task, sleep, spawn, timeout_after
from genloop.kernel.task import WAITING
from genloop.kernel.traps import IO

from .socket import Socket
from .stream import DEFAULT_LIMIT, Stream

log = logging.getLogger("genloop.net")

#: Listen backlog: Linux caps it at net.core.somaxconn (4096 on current kernels).
DEFAULT_BACKLOG = 4096
#: Connections accepted in a row before the accept loop lets other tasks run:
#: an accept and its connection's spawn cost ~0.3 ms on a loaded box, so a
#: batch stays a few ms, far from the slow-step mark.
ACCEPT_BATCH = 16
#: Seconds to wait after accept fails (out of fds: EMFILE) before trying again;
#: the connection stays in the backlog meanwhile.
ACCEPT_BACKOFF = 0.1
#: Seconds between two reports of a failing accept; the failures between are counted.
ACCEPT_ERROR_EVERY = 5.0
#: Longest pause between two looks for idle connections (``idle_timeout``).
IDLE_SWEEP = 1.0


def _tune(sock: _socket.socket) -> None:
    if sock.family in (_socket.AF_INET, _socket.AF_INET6):
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)   # as asyncio does


def open_connection(host: str, port: int, *, timeout: float | None = None, limit: int = DEFAULT_LIMIT):
    """Connect to ``host:port`` and return a ``Stream`` (``Timeout`` past ``timeout`` s)."""
    if timeout is not None:
        return (yield from timeout_after(timeout, _connect, host, port, limit))
    return (yield from _connect(host, port, limit))


def _connect(host, port, limit):
    infos = _socket.getaddrinfo(host, port, type=_socket.SOCK_STREAM) if not _is_ip(host) else \
        [(_socket.AF_INET6 if ":" in host else _socket.AF_INET, None, None, None, (host, port))]
    err = None
    for family, *_, addr in infos:
        sock = Socket.tcp(family)
        try:
            yield from sock.connect(addr)
        except BaseException as e:
            sock.close()
            if not isinstance(e, OSError):
                raise
            err = e
            continue
        _tune(sock.sock)
        return Stream(sock, limit=limit, peer=addr)
    raise err or OSError(f"cannot resolve {host!r}")


def _is_ip(host: str) -> bool:
    try:
        _socket.inet_pton(_socket.AF_INET6 if ":" in host else _socket.AF_INET, host)
    except OSError:
        return False
    return True


def listen(host: str, port: int, *, backlog: int = DEFAULT_BACKLOG, reuse_port: bool = False) -> Socket:
    """A listening ``Socket`` on ``host:port`` (port 0 picks a free port)."""
    family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
    sock = _socket.socket(family, _socket.SOCK_STREAM)
    try:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return Socket(sock)


class Server:
    """A listening TCP server: one task per connection, running ``handler(stream)``.

    A handler's exception is logged and closes only its own connection.
    With ``idle_timeout`` (seconds), a connection whose task has waited on
    its socket (to read or to write) that long is cancelled, so idle clients
    cannot hold every ``max_connections`` slot; it costs nothing per read or
    write: a sweeper looks at the waits the kernel records anyway.
    """

    def __init__(self, handler, listener: Socket, *, dispatcher=None, max_connections=None,
                 limit=DEFAULT_LIMIT, name="tcp", idle_timeout: float | None = None):
        self.handler = handler
        self.listener = listener
        self.dispatcher = dispatcher
        self.limit = limit
        self.name = name
        self.port = listener.sock.getsockname()[1]
        self.address = listener.sock.getsockname()
        self.connections = TaskGroup()
        self._slots = Semaphore(max_connections) if max_connections else None
        self._closed = Event()
        self._services = []
        self.accepted = 0
        self.idle_timeout = idle_timeout
        self._watched = {}                   # connection task -> its socket, with idle_timeout
        self._watch_lock = threading.Lock()  # handlers may run on other dispatchers' threads
        self._accept_errors = 0              # failures not reported yet
        self._accept_reported = -ACCEPT_ERROR_EVERY

    def __repr__(self):
        return f"<Server {self.name} on {self.address[0]}:{self.port}>"

    def _accept_loop(self):
        """Accept for ever: batches of ACCEPT_BATCH, or one per free slot under max_connections."""
        slots = self._slots
        batch = 1 if slots is not None else ACCEPT_BATCH
        spawn_conn = self.connections.spawn
        handle = self._handle
        dispatcher = self.dispatcher
        while True:
            if slots is not None:
                yield from slots.acquire()     # the connection's task releases it as it ends
            for _ in range(batch):
                accepted = yield from self._accept()
                if accepted is None:
                    return                     # closed under us; close() cancels this task too
                conn, addr = accepted
                _tune(conn)
                self.accepted += 1
                yield from spawn_conn(handle, conn, addr, dispatcher=dispatcher, name=f"{self.name}:{addr[1]}")
            yield                              # a turn for the others between batches

    def _accept(self):
        """The next connection, waiting for one and backing off while accept fails; None once closed."""
        lsock = self.listener.sock
        while True:
            try:
                return lsock.accept()
            except BlockingIOError:
                yield self.listener._wait_read
            except OSError as e:   # EMFILE and friends: back off, keep serving
                if self.listener.closed:
                    return None
                self._report_accept_error(e)
                yield from sleep(ACCEPT_BACKOFF)

    def _report_accept_error(self, error):
        """Log a failing accept at most once per ACCEPT_ERROR_EVERY seconds, with the count since."""
        self._accept_errors += 1
        now = time.monotonic()
        if now - self._accept_reported >= ACCEPT_ERROR_EVERY:
            log.error("%r: accept failed %d time(s) in %.0f s, last: %s; retrying every %s s",
                      self, self._accept_errors, min(now - self._accept_reported, ACCEPT_ERROR_EVERY),
                      error, ACCEPT_BACKOFF)
            self._accept_reported = now
            self._accept_errors = 0

    def _sweep_idle(self):
        """Cancel the connections whose task has waited on its own socket over ``idle_timeout``."""
        clock = current_kernel().clock
        timeout = self.idle_timeout
        while True:
            yield from sleep(min(IDLE_SWEEP, timeout / 4))
            now = clock.now()
            with self._watch_lock:
                watched = list(self._watched.items())
            for task, sock in watched:
                trap = task.trap
                if task.state == WAITING and type(trap) is tuple and trap[0] == IO and trap[1] is sock \
                        and now - task.since > timeout:
                    log.debug("%r: %s idle for over %s s; closing it", self, task.name, timeout)
                    task.cancel()

    def _handle(self, conn, addr):
        sock = Socket(conn)
        stream = Stream(sock, limit=self.limit, peer=addr)
        watched = self.idle_timeout is not None
        if watched:
            task = yield from current_task()
            with self._watch_lock:
                self._watched[task] = conn
        try:
            yield from self.handler(stream)
        except Cancelled:
            raise
        except (ConnectionError, OSError) as e:
            log.debug("%r: connection from %s ended: %s", self, addr, e)
        except Exception:
            log.exception("%r: handler failed for %s; closing that connection", self, addr)
        finally:
            if watched:
                with self._watch_lock:
                    del self._watched[task]
            sock.close()
            if self._slots is not None:
                self._slots.release()

    def start(self):
        """Start accepting (``serve_tcp`` does this)."""
        yield from self.start_service(self._accept_loop, name=f"{self.name}-accept :{self.port}")
        if self.idle_timeout is not None:
            yield from self.start_service(self._sweep_idle, name=f"{self.name}-idle :{self.port}")
        return self

    def start_service(self, fn, *args, name=None):
        """Run ``fn(*args)`` as a task that lives as long as the listener: ``close`` cancels it.

        The accept loop is one; a protocol adds its own (HTTP's timeout sweeper).
        """
        task = yield from spawn(fn, *args, name=name)
        self._services.append(task)
        return task

    def close(self) -> None:
        """Stop accepting; connections already open go on."""
        if self._closed.is_set():
            return
        for task in self._services:
            task.cancel()
        self.listener.close()
        self._closed.set()

    def serve_forever(self):
        """Wait until the server is closed; cancelling this shuts it down at once."""
        try:
            yield from self._closed.wait()
        except Cancelled:
            yield from self.shutdown(0)
            raise

    def shutdown(self, grace: float = 0.0):
        """Stop accepting, give connections ``grace`` seconds to finish, then cancel them."""
        self.close()
        for task in self._services:
            yield from task.wait_done()
        if grace > 0:
            done = yield from spawn(self.connections.join)
            try:
                yield from timeout_after(grace, done.wait_done)
            except TimeoutError:
                pass
        self.connections.cancel()
        try:
            yield from self.connections.join()
        except Exception:  # noqa: BLE001 - handler errors were logged as they happened
            pass


def serve_tcp(handler, host: str = "127.0.0.1", port: int = 0, *, dispatcher=None,
              backlog: int = DEFAULT_BACKLOG, max_connections: int | None = None,
              reuse_port: bool = False, limit: int = DEFAULT_LIMIT, idle_timeout: float | None = None,
              name: str = "tcp"):
    """Listen on ``host:port`` and serve each connection with ``handler(stream)``.

    Use as ``server = yield from serve_tcp(handle, "127.0.0.1", 0)``; the
    returned ``Server`` is already accepting (``server.port`` is the real
    port). Handlers run on ``dispatcher`` (default: the caller's).
    ``max_connections`` leaves further clients waiting in the backlog;
    ``idle_timeout`` (seconds; default None: never) closes a connection that
    has waited that long on its socket (see ``Server``). ``name`` names the
    server and its tasks (the accept loop is "NAME-accept :PORT", each
    connection "NAME:PORT").
    """
    listener = listen(host, port, backlog=backlog, reuse_port=reuse_port)
    server = Server(handler, listener, dispatcher=dispatcher, max_connections=max_connections, limit=limit,
                    idle_timeout=idle_timeout, name=name)
    return (yield from server.start())
