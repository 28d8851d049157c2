"""The monitor: a line-based console into a live kernel (curio's monitor).

It runs on a plain thread of its own with blocking sockets, never on a
dispatcher, so it answers even while Main is stuck in a call that will not
yield: it only reads the task table (under the kernel's lock, held briefly by
everyone) and the tasks' own attributes.

Whoever reaches it can list and cancel every task, so it is private by
default: a Unix socket of mode 0600 in a directory only its user can enter
(``runtime_dir()``: ``$XDG_RUNTIME_DIR/genloop`` or ``<tmp>/genloop-<uid>``,
mode 0700). TCP is used only when asked for (a port), on loopback only, and
then a client must first send ``auth TOKEN``, the token being in a file of
mode 0600 in that directory. A line that looks like HTTP closes the
connection (as Redis does: a web page can make a browser send a POST whose
body is ``cancel 2``); at most ``MAX_CLIENTS`` connections are served; when
``accept`` fails (out of descriptors) it rests ``ACCEPT_BACKOFF`` rather than
spin. ``genloop monitor`` is the client (``connect_monitor``).
"""
import errno
import glob
import hmac
import ipaddress
import linecache
import logging
import os
import re
import secrets
import selectors
import socket
import stat
import sys
import tempfile
import threading
import time

from .introspect import current_frames, describe, frames, task_tree
from .task import RUNNING, WAITING

log = logging.getLogger("genloop")

#: curio's monitor listens on 48802; so does ours, when asked for TCP.
MONITOR_PORT = 48802
#: A client that reads nothing for this long is dropped, so it cannot stall the console.
SEND_TIMEOUT = 5.0
#: ``ps`` cuts task names, and what a task waits for, to this many characters (reprs of
#: functools.partial objects run to hundreds), and drops memory addresses.
NAME_WIDTH = 40
WAITS_WIDTH = 60
#: A console line is a few words; a client sending more without a newline is dropped.
MAX_LINE = 4096
#: Connections served at once; one more is told so and closed.
MAX_CLIENTS = 8
#: Seconds the listener rests after ``accept`` failed for want of descriptors (EMFILE).
ACCEPT_BACKOFF = 0.5
PROMPT = b"genloop> "
GREETING = b"genloop monitor: type help\n"
#: A request line or a header a browser sends: such a connection is closed at once.
_HTTP = re.compile(rb"\s*(?:[A-Z]+ \S+ HTTP/\d|(?i:host|origin|user-agent|content-length|content-type)\s*:)")
HELP = """\
ps          every task: id, name, state, dispatcher, steps, what it waits for and for how long
where ID    the chain of `yield from` frames task ID is suspended in, with source lines
tree        the tasks as a tree (who spawned whom)
cancel ID   cancel task ID (Cancelled is thrown in at its suspension point)
stats       per dispatcher: its workers, live tasks and their steps; poller waits; slow steps on Main
help        this text
quit        close this connection (the program goes on)"""


def start_monitor(kernel, setting):
    """The monitor ``run(..., monitor=setting)`` asks for, started; or None.

    ``setting``: False for none; True for a private Unix socket; a str for a
    Unix socket at that path; an int for that TCP port on loopback (0: any
    free one), with a token; None to follow the environment:
    ``GENLOOP_MONITOR=1`` (a Unix socket), with ``GENLOOP_MONITOR_PORT`` or
    ``GENLOOP_MONITOR_HOST`` for TCP instead (port ``MONITOR_PORT`` by default). A failure to listen is logged, not
    raised: the program matters more than its console.
    """
    if setting is None:
        if os.environ.get("GENLOOP_MONITOR", "").lower() not in ("1", "true", "yes", "on"):
            return None
        port = os.environ.get("GENLOOP_MONITOR_PORT")
        tcp = port or os.environ.get("GENLOOP_MONITOR_HOST")
        setting = int(port or MONITOR_PORT) if tcp else True
    if setting is False:
        return None
    host = os.environ.get("GENLOOP_MONITOR_HOST", "127.0.0.1")
    try:
        if setting is True:
            return Monitor(kernel)
        if isinstance(setting, str):
            return Monitor(kernel, path=setting)
        return Monitor(kernel, host, int(setting))
    except OSError as e:
        log.error("cannot start the genloop monitor (%s); pass run(..., monitor=PORT or PATH)", e)
        return None


def check_loopback(host: str) -> None:
    """Refuse any address but loopback, with the reason."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the genloop monitor listens on loopback only (127.0.0.1 or ::1), not {host!r}: "
                         "whoever reaches it can cancel tasks; use an SSH tunnel to look from afar")


def runtime_dir() -> str:
    """This user's private directory for monitor sockets and tokens, made (mode 0700) if need be.

    Refused (PermissionError) if it exists but is not a directory of this
    user that only this user can enter: someone else may have planted it.
    """
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        path = os.path.join(base, "genloop")
    else:
        path = os.path.join(tempfile.gettempdir(), f"genloop-{os.getuid()}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{path} must be a directory of uid {os.getuid()} that only it may enter (mode 0700)")
    return path


def socket_path(pid: int) -> str:
    """Where the Unix-socket monitor of process ``pid`` listens."""
    return os.path.join(runtime_dir(), f"monitor-{pid}.sock")


def token_path(port: int) -> str:
    """The file holding the token of the TCP monitor on ``port``."""
    return os.path.join(runtime_dir(), f"monitor-{port}.token")


def connect_monitor(*, path=None, pid=None, port=None, host="127.0.0.1", timeout=None) -> socket.socket:
    """A connection to a monitor, authenticated if it is a TCP one (a plain blocking socket).

    Give the socket ``path``, the ``pid`` of the program, or the TCP
    ``port``; with none, the one live monitor in ``runtime_dir()`` is taken
    (LookupError if there is none, or more than one).
    """
    if port is not None:
        conn = socket.create_connection((host, port), timeout=timeout)
        try:
            with open(token_path(port), "rb") as f:
                conn.sendall(b"auth " + f.read().strip() + b"\n")
        except BaseException:
            conn.close()
            raise
        return conn
    if path is None:
        path = socket_path(pid) if pid is not None else _only_monitor()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(path)
    except BaseException:
        conn.close()
        raise
    return conn


def _only_monitor() -> str:
    live = [p for p in glob.glob(os.path.join(runtime_dir(), "monitor-*.sock")) if _alive(p)]
    if len(live) != 1:
        raise LookupError("no monitor is running (start the program with GENLOOP_MONITOR=1)" if not live else
                          "several monitors are running; pick one with --pid: " + ", ".join(sorted(live)))
    return live[0]


def _alive(path: str) -> bool:
    try:
        os.kill(int(path.rsplit("-", 1)[1].split(".")[0]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


class _Client:
    """One console connection: its unfinished line, and whether it has shown the token."""

    __slots__ = ("buffer", "trusted")

    def __init__(self, trusted):
        self.buffer = b""
        self.trusted = trusted


class Monitor:
    """Serves the console from its own thread until ``stop()``.

    With no ``port``: a Unix socket at ``path`` (default ``socket_path(pid)``).
    With a ``port``: TCP on ``host`` (loopback only), 0 picking a free port
    (``self.port`` is the real one), and a fresh token in ``token_path(port)``.
    ``self.address`` is what ``connect_monitor`` needs to reach it.
    """

    def __init__(self, kernel, host="127.0.0.1", port=None, *, path=None):
        self.token = self.port = self.path = self.token_file = None
        if port is None:
            self.path = path or socket_path(os.getpid())
            self.listener = _listen_unix(self.path)
            self.address = {"path": self.path}
            where, usage = f"unix:{self.path}", f"genloop monitor --socket {self.path}"
        else:
            check_loopback(host)
            self.listener = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host
                                                 else socket.AF_INET)
            self.port = self.listener.getsockname()[1]
            try:
                self.token, self.token_file = secrets.token_hex(16).encode(), token_path(self.port)
                _write_private(self.token_file, self.token)
            except BaseException:
                self.listener.close()
                raise
            self.address = {"host": host, "port": self.port}
            where, usage = f"{host}:{self.port} (token in {self.token_file})", f"genloop monitor --port {self.port}"
        self.kernel = kernel
        self.listener.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._failing = False       # accept is failing: reported once until it works again
        # name -> (method, how many arguments)
        self._commands = {"ps": (self.ps, 0), "where": (self.where, 1), "tree": (self.tree, 0),
                          "cancel": (self.cancel, 1), "stats": (self.stats, 0), "help": (lambda: HELP, 0)}
        self._thread = threading.Thread(target=self._serve, name="genloop-monitor", daemon=True)
        self._thread.start()
        sys.stderr.write(f"genloop monitor on {where}: {usage}\n")

    def stop(self):
        """Close every connection and the listener; join the thread; remove the socket and token files."""
        self._wake_w.send(b"x")
        self._thread.join()
        for s in (self.listener, self._wake_r, self._wake_w):
            s.close()
        for name in (self.path, self.token_file):
            if name is not None:
                try:
                    os.unlink(name)
                except FileNotFoundError:
                    pass

    # -- the connection loop (the monitor's thread) --------------------------
    def _serve(self):
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        clients = {}
        resting_until = None
        try:
            while True:
                timeout = None
                if resting_until is not None:
                    timeout = resting_until - time.monotonic()
                    if timeout <= 0:
                        sel.register(self.listener, selectors.EVENT_READ)
                        resting_until = timeout = None
                for key, _ in sel.select(timeout):
                    sock = key.fileobj
                    if sock is self._wake_r:
                        return
                    if sock is self.listener:
                        if not self._accept(sel, clients):
                            sel.unregister(self.listener)     # out of descriptors: rest, do not spin
                            resting_until = time.monotonic() + ACCEPT_BACKOFF
                    elif not self._receive(sock, clients[sock]):
                        self._drop(sock, sel, clients)
        finally:
            for conn in list(clients):
                self._drop(conn, sel, clients)
            sel.close()

    def _accept(self, sel, clients) -> bool:
        """Take one connection; False when accept fails for want of resources."""
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return True                   # the client gave up already
        except OSError as e:
            if not self._failing:
                log.error("genloop monitor: accept failed (%s); resting %s s between tries", e, ACCEPT_BACKOFF)
                self._failing = True
            return e.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
        self._failing = False
        conn.settimeout(SEND_TIMEOUT)
        if len(clients) >= MAX_CLIENTS:
            _send(conn, b"genloop monitor: %d connections already; bye\n" % MAX_CLIENTS)
            conn.close()
            return True
        clients[conn] = _Client(trusted=self.token is None)
        sel.register(conn, selectors.EVENT_READ)
        if self.token is None:
            _send(conn, GREETING + PROMPT)
        return True

    def _receive(self, conn, client) -> bool:
        """Answer every complete line that arrived; False once the client is gone, quits or is refused."""
        try:
            data = conn.recv(4096)
        except OSError:
            return False
        if not data:
            return False
        client.buffer += data
        if len(client.buffer) > MAX_LINE:
            _send(conn, b"line too long; bye\n")
            return False
        while b"\n" in client.buffer:
            line, client.buffer = client.buffer.split(b"\n", 1)
            if _HTTP.match(line):
                log.warning("genloop monitor: closed a connection that spoke HTTP (a web page?)")
                return False
            if not client.trusted:
                if not self._authenticate(conn, line):
                    return False
                client.trusted = True
                continue
            words = line.decode(errors="replace").split()
            if words and words[0] == "quit":
                _send(conn, b"bye\n")
                return False
            answer = self.execute(words) + "\n" if words else ""
            if not _send(conn, answer.encode(errors="backslashreplace") + PROMPT):
                return False
        return True

    def _authenticate(self, conn, line) -> bool:
        """The first line on TCP must be ``auth TOKEN``: greet the client if it is, else say why and refuse."""
        if not hmac.compare_digest(line.strip(), b"auth " + self.token):
            _send(conn, b"genloop monitor: send auth TOKEN first (the token is in %s); bye\n"
                  % self.token_file.encode(errors="replace"))
            return False
        return _send(conn, GREETING + PROMPT)

    @staticmethod
    def _drop(conn, sel, clients):
        sel.unregister(conn)
        del clients[conn]
        conn.close()

    # -- commands ------------------------------------------------------------
    def execute(self, words) -> str:
        """One command line, already split into words; returns the answer text."""
        name, args = words[0], words[1:]
        if name not in self._commands:
            return f"unknown command {name!r}; try help"
        command, nargs = self._commands[name]
        if len(args) != nargs:
            return "usage: " + next(h for h in HELP.splitlines() if h.startswith(name + " "))
        try:
            return command(*args)
        except LookupError as e:
            return e.args[0]
        except Exception as e:  # noqa: BLE001 - a console must outlive its own bugs
            log.exception("monitor command %r failed", words)
            return f"{name} failed: {e!r}"

    def _live(self):
        return sorted(list(self.kernel.tasks.values()), key=lambda t: t.id)   # one atomic copy

    def _task(self, ident):
        try:
            number = int(ident.lstrip("#"))
        except ValueError:
            number = None
        task = self.kernel.tasks.get(number)
        if task is None:
            raise LookupError(f"no live task #{ident.lstrip('#')}; see ps")
        return task

    def _waits(self, task):
        """What ``task`` waits for, in words, and for how long."""
        if task.state != WAITING:
            return "", ""
        return describe(task.trap), f"{self.kernel.clock.now() - task.since:.2f} s"

    def ps(self):
        rows = [("id", "name", "state", "dispatcher", "steps", "waits for", "for")]
        for t in self._live():
            waits, since = self._waits(t)
            rows.append((str(t.id), _cut(t.name, NAME_WIDTH), t.state, t.dispatcher.name, str(t.steps),
                         _cut(waits, WAITS_WIDTH), since))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1]
                         for r in rows).rstrip()

    def where(self, ident):
        task = self._task(ident)
        waits, since = self._waits(task)
        head = f"task #{task.id} {task.name}: {task.state}" + (f", {waits} for {since}" if waits else "")
        chain = frames(task)
        if task.state == RUNNING:
            thread, stack = _running_stack(task)
            if stack:
                head = (f"task #{task.id} {task.name}: running on {thread}; its whole stack now, "
                        "innermost last")
                chain = stack
            else:
                head += " (still executing: the innermost frame is below the last one shown)"
        lines = [head]
        for filename, lineno, function, source in chain:
            lines.append(f"  {_short(filename)}:{lineno} in {function}")
            lines.append(f"      {source}")
        return "\n".join(lines)

    def tree(self):
        return "\n".join(task_tree(self._live()))

    def cancel(self, ident):
        task = self._task(ident)
        task.cancel()
        answer = f"cancel requested for task #{task.id} {task.name}"
        if task.parent is None:
            return answer + ": the main task, so the program ends once it has unwound"
        server = _server_of_accept_loop(task)
        if server is not None:
            return answer + f": {server!r} no longer accepts connections (the open ones go on)"
        return answer

    def stats(self):
        kernel = self.kernel
        live = self._live()
        with kernel.lock:
            pools = [p for p in kernel.pools.values() if not p.limited]
        lines = ["dispatcher  workers                      live tasks  their steps  queued"]
        for pool in pools:
            mine = [t for t in live if _home(t) is pool]
            lines.append(f"{pool.name:<10}  {', '.join(pool.workers) or '(none started)':<27}  "
                         f"{len(mine):>10}  {sum(t.steps for t in mine):>11}  {len(pool.snapshot()):>6}")
        lines.append(f"poller waits: {kernel.stats['polls']} (fds waited on now: {kernel.poller.waiting})")
        lines.append(f"slow steps on Main: {kernel.stats['slow_steps']}")
        lines.append(f"timers: {len(kernel.timers)}")
        return "\n".join(lines)


def _listen_unix(path: str) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0600 (its directory should be private too)."""
    try:
        os.unlink(path)               # a socket left by a dead process of the same pid
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(MAX_CLIENTS)
    except BaseException:
        sock.close()
        raise
    return sock


def _write_private(path: str, data: bytes) -> None:
    """Write ``data`` to a fresh file only this user can read."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _send(conn, data) -> bool:
    try:
        conn.sendall(data)
    except OSError:
        return False
    return True


def _home(task):
    """The pool whose workers step ``task`` (under its limited views; Unconfined's has none)."""
    pool = task._pool
    while pool.limited:
        pool = pool.parent
    return pool


def _running_stack(task):
    """(thread name, frames) of the thread stepping ``task`` now: from the task's outer frame to the innermost.

    The task's outermost generator frame is on that thread's stack while it
    runs, so each thread's current stack (``sys._current_frames``) is searched
    for it. (None, []) if the step ended meanwhile.
    """
    outer = getattr(task.coro, "gi_frame", None) or getattr(task.coro, "cr_frame", None)
    if outer is None:
        return None, []
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in current_frames().items():
        stack = []
        while frame is not None:
            stack.append(frame)
            if frame is outer:
                return names.get(ident, str(ident)), [
                    (f.f_code.co_filename, f.f_lineno, f.f_code.co_name,
                     linecache.getline(f.f_code.co_filename, f.f_lineno).strip()) for f in reversed(stack)]
            frame = frame.f_back
    return None, []


def _server_of_accept_loop(task):
    """The server whose accept loop ``task`` is, or None."""
    frame = getattr(task.coro, "gi_frame", None)
    if frame is None or frame.f_code.co_name != "_accept_loop":
        return None
    return frame.f_locals.get("self")


_ADDRESS = re.compile(r" (object )?at 0x[0-9a-fA-F]+")


def _cut(text: str, width: int) -> str:
    """``text`` for a table: no memory addresses, at most ``width`` characters."""
    text = _ADDRESS.sub("", text)
    return text if len(text) <= width else text[:width - 1] + "…"


def _short(filename: str) -> str:
    """``filename`` relative to the working directory when it is under it."""
    rel = os.path.relpath(filename)
    return filename if rel.startswith("..") else rel
