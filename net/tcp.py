"""TCP (and Unix stream sockets): ``open_connection``, ``serve_tcp`` and the ``Server`` it returns.

TLS (``ssl=``) wraps a connection at the ``Socket`` layer (``net.tls``), so a
handler and the HTTP loop see the same ``Stream`` either way; ``path=``
gives the Unix-socket form of each call.
"""
import logging
import os
import socket as _socket
import stat
import threading
import time

from genloop.kernel import (
    Cancelled,
    Dispatchers,
    Event,
    Semaphore,
    TaskGroup,
    coroutine,
    current_kernel,
    current_task,
    sleep,
    spawn,
    timeout_after,
    with_context,
)
from genloop.kernel.gentypes import Gen
from genloop.kernel.signals import STOP_GRACE, on_stop
from genloop.kernel.task import WAITING
from genloop.kernel.traps import IO

from .socket import Socket
from .stream import DEFAULT_LIMIT, Stream
from .tls import HANDSHAKE_TIMEOUT, start_tls

log = logging.getLogger("genloop.net")

#: Listen backlog: Linux caps it at net.core.somaxconn (4096 on current kernels).
DEFAULT_BACKLOG = 4096
#: Connections accepted in a row before the accept loop lets other tasks run.
#: An accept and its connection's spawn cost ~0.3 ms on a loaded box, so a
#: batch stays under ~20 ms, far from the slow-step mark. Between two batches
#: the accept task waits a whole turn of Main, behind every busy connection:
#: at 16, 1,000 clients connecting at once (wrk -c1000 against genloop serve)
#: waited 1.1-1.9 s for the last accepts, which set their first request's
#: latency (p99); at 64 the p99 was 340-377 ms (gunicorn gthread: 457-717 ms).
ACCEPT_BATCH = 64
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


@coroutine
def open_connection(host: str | None = None, port: int | None = None, *, path: str | None = None,
                    ssl=None, server_hostname: str | None = None,
                    ssl_handshake_timeout: float | None = HANDSHAKE_TIMEOUT,
                    timeout: float | None = None, limit: int = DEFAULT_LIMIT) -> Gen[Stream]:
    """Connect to ``host:port`` (or the Unix socket ``path``) and return a ``Stream``.

    A trap. ``timeout`` bounds the whole call (``Timeout``). A host name is
    resolved on ``Dispatchers.IO``, never on the caller's thread. With
    ``ssl`` (an ``ssl.SSLContext``) the stream speaks TLS once the handshake
    is done; ``server_hostname`` (default ``host``) is the name the
    certificate must match.
    """
    if timeout is not None:
        return (yield from timeout_after(timeout, _connect, host, port, path, ssl, server_hostname,
                                         ssl_handshake_timeout, limit))
    return (yield from _connect(host, port, path, ssl, server_hostname, ssl_handshake_timeout, limit))


@coroutine
def _connect(host, port, path, ssl, server_hostname, handshake_timeout, limit):
    if path is not None:
        sock = Socket(_socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM))
        addrs = [path]
    else:
        if host is None or port is None:
            raise TypeError("open_connection needs host and port, or path=")
        sock = None
        if _is_ip(host):
            addrs = [(host, port)]
        else:     # getaddrinfo blocks (DNS): a thread of IO waits for it, not Main
            infos = yield from with_context(Dispatchers.IO, _socket.getaddrinfo, host, port, 0, _socket.SOCK_STREAM)
            addrs = [info[4] for info in infos]
    err = None
    for addr in addrs:
        if path is None:
            sock = Socket.tcp(_socket.AF_INET6 if ":" in addr[0] else _socket.AF_INET)
        try:
            yield from sock.connect(addr)
        except BaseException as e:
            sock.close()
            if not isinstance(e, OSError):
                raise
            err = e             # refused or unreachable: try the next address
            continue
        try:
            _tune(sock.sock)
            if ssl is not None:
                sock = yield from start_tls(sock, ssl, server_hostname=server_hostname or host,
                                            timeout=handshake_timeout)
        except BaseException:
            sock.close()
            raise
        return Stream(sock, limit=limit, peer=addr)
    raise err or OSError(f"cannot resolve {host!r}")


def _is_ip(host: str) -> bool:
    try:
        _socket.inet_pton(_socket.AF_INET6 if ":" in host else _socket.AF_INET, host)
    except OSError:
        return False
    return True


def listen(host: str | None = "127.0.0.1", port: int = 0, *, path: str | None = None,
           backlog: int = DEFAULT_BACKLOG, reuse_port: bool = False) -> Socket:
    """A listening ``Socket`` on ``host:port`` (port 0 picks a free port), or on the Unix socket ``path``.

    A stale socket file at ``path`` (left by a process that died) is replaced;
    any other file there is an error (``FileExistsError``).
    """
    if path is not None:
        _remove_stale(path)
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        address = path
    else:
        sock = _socket.socket(_socket.AF_INET6 if ":" in host else _socket.AF_INET, _socket.SOCK_STREAM)
        address = (host, port)
    try:
        if path is None:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return Socket(sock)


def _in_filesystem(path) -> bool:
    """A Unix socket path that names a file (not Linux's abstract namespace, which starts with NUL)."""
    return isinstance(path, str) and bool(path) and not path.startswith("\0")


def _remove_stale(path) -> None:
    """Remove a socket file left at ``path`` (as asyncio's ``create_unix_server`` does)."""
    if _in_filesystem(path):
        try:
            if not stat.S_ISSOCK(os.stat(path).st_mode):
                raise FileExistsError(f"{path} exists and is not a socket")
            os.unlink(path)
        except FileNotFoundError:
            pass


def _label(addr) -> str:
    """A peer address for task names and logs: the port of a TCP peer; Unix peers are unnamed."""
    return str(addr[1]) if isinstance(addr, tuple) else "unix"


class Server:
    """A listening stream server: one task per connection, running ``handler(stream)``.

    A handler's exception is logged and closes only its own connection. The
    listener may be TCP or Unix (``port`` is then None and ``address`` the
    path); with ``ssl`` each connection's TLS handshake runs in its own task
    first, and a failed one is logged (level INFO) and closes only that
    connection. At a graceful stop (SIGTERM, ``kernel.request_stop``) the
    server runs ``shutdown(stop_grace)``.

    With ``idle_timeout`` (seconds), a connection whose task has waited on
    its socket (to read or to write) that long is cancelled, so idle clients
    cannot hold every ``max_connections`` slot; it costs nothing per read or
    write: a sweeper looks at the waits the kernel records anyway.
    """

    def __init__(self, handler, listener: Socket, *, dispatcher=None, max_connections=None,
                 limit=DEFAULT_LIMIT, name="tcp", ssl=None, ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
                 stop_grace: float = STOP_GRACE, idle_timeout: float | None = None):
        self.handler = handler
        self.listener = listener
        self.dispatcher = dispatcher
        self.limit = limit
        self.name = name
        self.ssl = ssl
        self.ssl_handshake_timeout = ssl_handshake_timeout
        self.stop_grace = stop_grace
        self.address = listener.sock.getsockname()
        self.port = self.address[1] if isinstance(self.address, tuple) else None
        self.connections = TaskGroup()
        self._slots = Semaphore(max_connections) if max_connections else None
        self._closed = Event()
        self._finished = Event()
        self._shutting_down = False
        self._services = []
        self._stop_hook = None
        #: What a graceful stop runs, given ``stop_grace`` (default: ``shutdown``); a protocol
        #: that knows when its connections are idle puts its own here (rpc does).
        self.graceful = None
        self.accepted = 0
        self.idle_timeout = idle_timeout
        self._watched = {}                   # connection task -> its socket, with idle_timeout
        self._watch_lock = threading.Lock()  # handlers may run on other dispatchers' threads
        self._accept_errors = 0              # failures not reported yet
        self._accept_reported = -ACCEPT_ERROR_EVERY
        # A Unix socket file is removed at close, if it is still the one bound here.
        self._path_id = _file_id(self.address) if listener.sock.family == _socket.AF_UNIX else None

    def __repr__(self):
        where = f"{self.address[0]}:{self.port}" if self.port is not None else repr(self.address)
        return f"<Server {self.name} on {where}>"

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
                yield from spawn_conn(handle, conn, addr, dispatcher=dispatcher, name=f"{self.name}:{_label(addr)}")
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

    @coroutine      # so that an ``async def`` handler's coroutine can be awaited here
    def _handle(self, conn, addr):
        sock = Socket(conn) if self.ssl is None else None
        watched = self.idle_timeout is not None
        if watched:
            task = yield from current_task()
            with self._watch_lock:
                self._watched[task] = conn
        try:
            if sock is None:
                try:
                    sock = yield from start_tls(conn, self.ssl, server_side=True, timeout=self.ssl_handshake_timeout)
                except OSError as e:        # ssl.SSLError and Timeout are OSErrors
                    log.info("%r: TLS handshake with %s failed: %s", self, addr or "a Unix peer", e)
                    return
            yield from self.handler(Stream(sock, limit=self.limit, peer=addr))
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
            if sock is None:
                conn.close()
            else:
                sock.close()
            if self._slots is not None:
                self._slots.release()

    @coroutine
    def start(self) -> Gen["Server"]:
        """Start accepting (``serve_tcp`` does this); a trap returning the server."""
        where = f":{self.port}" if self.port is not None else str(self.address)
        yield from self.start_service(self._accept_loop, name=f"{self.name}-accept {where}")
        if self.idle_timeout is not None:
            yield from self.start_service(self._sweep_idle, name=f"{self.name}-idle {where}")
        self._stop_hook = on_stop(self._graceful_stop)
        return self

    def _graceful_stop(self):
        yield from (self.graceful or self.shutdown)(self.stop_grace)

    @coroutine
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
        if self._stop_hook is not None:
            self._stop_hook.remove()
        self.listener.close()
        if self._path_id is not None and _file_id(self.address) == self._path_id:
            os.unlink(self.address)
        self._closed.set()

    @coroutine
    def serve_forever(self) -> Gen[None]:
        """Wait until the server is closed (and, if it is shutting down, until that is done).

        Cancelling this shuts it down at once.
        """
        try:
            yield from self._closed.wait()
            if self._shutting_down:
                yield from self._finished.wait()
        except Cancelled:
            yield from self.shutdown(0)
            raise

    @coroutine
    def shutdown(self, grace: float = 0.0, *, drain=None) -> Gen[None]:
        """Stop accepting, give connections ``grace`` seconds to finish, then cancel them.

        ``drain``, a generator function, is what the grace waits for instead of
        every connection's end (rpc waits for the calls in flight to be answered).
        """
        self._shutting_down = True
        self.close()
        for task in self._services:
            yield from task.wait_done()
        if grace > 0:
            done = yield from spawn(drain or self.connections.join)
            try:
                yield from timeout_after(grace, done.wait_done)
            except TimeoutError:
                done.cancel()
        self.connections.cancel()
        try:
            yield from self.connections.join()
        except Exception:  # noqa: BLE001 - handler errors were logged as they happened
            pass
        finally:
            self._finished.set()


def _file_id(path):
    """(device, inode) of the Unix socket file ``path``, or None (abstract, or gone)."""
    if not _in_filesystem(path):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


@coroutine
def serve_tcp(handler, host: str = "127.0.0.1", port: int = 0, *, path: str | None = None, ssl=None,
              ssl_handshake_timeout: float | None = HANDSHAKE_TIMEOUT, dispatcher=None,
              backlog: int = DEFAULT_BACKLOG, max_connections: int | None = None,
              reuse_port: bool = False, limit: int = DEFAULT_LIMIT, idle_timeout: float | None = None,
              stop_grace: float = STOP_GRACE, name: str = "tcp") -> Gen[Server]:
    """Listen on ``host:port`` (or the Unix socket ``path``) and serve each connection with ``handler(stream)``.

    Use as ``server = yield from serve_tcp(handle, "127.0.0.1", 0)``; the
    returned ``Server`` is already accepting (``server.port`` is the real
    port). ``handler`` is a generator function or an ``async def``; handlers
    run on ``dispatcher`` (default: the caller's). ``max_connections`` leaves
    further clients waiting in the backlog; ``idle_timeout`` (seconds;
    default None: never) closes a connection that has waited that long on its
    socket (see ``Server``). ``ssl`` (an ``ssl.SSLContext`` made for the
    server side) serves TLS. ``stop_grace`` is how long a graceful stop lets
    connections finish. ``name`` names the server and its tasks (the accept
    loop is "NAME-accept :PORT", each connection "NAME:PORT").
    """
    listener = listen(host, port, path=path, backlog=backlog, reuse_port=reuse_port)
    server = Server(handler, listener, dispatcher=dispatcher, max_connections=max_connections, limit=limit,
                    ssl=ssl, ssl_handshake_timeout=ssl_handshake_timeout, stop_grace=stop_grace,
                    idle_timeout=idle_timeout, name=name)
    return (yield from server.start())
