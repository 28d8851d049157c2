"""The monitor: a line-based console into a live kernel (curio's monitor).

It runs on a plain thread of its own with blocking sockets, never on a
dispatcher, so it answers even while Main is stuck in a call that will not
yield: it only reads the task table (under the kernel's lock, held briefly by
everyone) and the tasks' own attributes. It listens on loopback only,
because whoever reaches it can cancel tasks. Try ``nc 127.0.0.1 48802``.
"""
import ipaddress
import linecache
import logging
import os
import re
import selectors
import socket
import sys
import threading

from .introspect import describe, frames, task_tree
from .task import RUNNING, WAITING

log = logging.getLogger("genloop")

#: curio's monitor listens on 48802; so does ours.
MONITOR_PORT = 48802
#: A client that reads nothing for this long is dropped, so it cannot stall the console.
SEND_TIMEOUT = 5.0
#: ``ps`` cuts task names, and what a task waits for, to this many characters (reprs of
#: functools.partial objects run to hundreds), and drops memory addresses.
NAME_WIDTH = 40
WAITS_WIDTH = 60
#: A console line is a few words; a client sending more without a newline is dropped.
MAX_LINE = 4096
PROMPT = b"genloop> "
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

    ``setting``: False for none; True for the default port; an int for that
    port (0: any free one); None to follow the environment:
    ``GENLOOP_MONITOR=1``, with ``GENLOOP_MONITOR_PORT`` and ``GENLOOP_MONITOR_HOST``.
    A port already taken is logged, not raised: the program matters more than its console.
    """
    if setting is None:
        if os.environ.get("GENLOOP_MONITOR", "").lower() not in ("1", "true", "yes", "on"):
            return None
        setting = True
    if setting is False:
        return None
    port = int(os.environ.get("GENLOOP_MONITOR_PORT", MONITOR_PORT)) if setting is True else int(setting)
    host = os.environ.get("GENLOOP_MONITOR_HOST", "127.0.0.1")
    try:
        return Monitor(kernel, host, port)
    except OSError as e:
        log.error("cannot start the genloop monitor on %s:%d (%s); set GENLOOP_MONITOR_PORT "
                  "or pass run(..., monitor=PORT)", host, port, e)
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


class Monitor:
    """Serves the console on ``host:port`` from its own thread until ``stop()``.

    ``port`` 0 picks a free port; ``self.port`` is the real one.
    """

    def __init__(self, kernel, host="127.0.0.1", port=MONITOR_PORT):
        check_loopback(host)
        self.kernel = kernel
        self.listener = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host
                                             else socket.AF_INET)
        self.port = self.listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        # name -> (method, how many arguments)
        self._commands = {"ps": (self.ps, 0), "where": (self.where, 1), "tree": (self.tree, 0),
                          "cancel": (self.cancel, 1), "stats": (self.stats, 0), "help": (lambda: HELP, 0)}
        self._thread = threading.Thread(target=self._serve, name="genloop-monitor", daemon=True)
        self._thread.start()
        log.info("genloop monitor on %s:%d (genloop monitor --port %d)", host, self.port, self.port)

    def stop(self):
        """Close every connection and the listener; join the thread."""
        self._wake_w.send(b"x")
        self._thread.join()
        for s in (self.listener, self._wake_r, self._wake_w):
            s.close()

    # -- the connection loop (the monitor's thread) --------------------------
    def _serve(self):
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        buffers = {}
        try:
            while True:
                for key, _ in sel.select():
                    sock = key.fileobj
                    if sock is self._wake_r:
                        return
                    if sock is self.listener:
                        try:
                            conn, _ = sock.accept()
                        except OSError:
                            continue      # the client gave up already, or no fds left
                        conn.settimeout(SEND_TIMEOUT)
                        buffers[conn] = b""
                        sel.register(conn, selectors.EVENT_READ)
                        _send(conn, b"genloop monitor: type help\n" + PROMPT)
                    elif not self._receive(sock, buffers):
                        self._drop(sock, sel, buffers)
        finally:
            for conn in list(buffers):
                self._drop(conn, sel, buffers)
            sel.close()

    def _receive(self, conn, buffers) -> bool:
        """Answer every complete line that arrived; False once the client is gone or quits."""
        try:
            data = conn.recv(4096)
        except OSError:
            return False
        if not data:
            return False
        buffers[conn] += data
        if len(buffers[conn]) > MAX_LINE:
            _send(conn, b"line too long; bye\n")
            return False
        while b"\n" in buffers[conn]:
            line, buffers[conn] = buffers[conn].split(b"\n", 1)
            words = line.decode(errors="replace").split()
            if words and words[0] == "quit":
                _send(conn, b"bye\n")
                return False
            answer = self.execute(words) + "\n" if words else ""
            if not _send(conn, answer.encode() + PROMPT):
                return False
        return True

    @staticmethod
    def _drop(conn, sel, buffers):
        sel.unregister(conn)
        del buffers[conn]
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
        with self.kernel.lock:
            return sorted(self.kernel.tasks.values(), key=lambda t: t.id)

    def _task(self, ident):
        try:
            number = int(ident.lstrip("#"))
        except ValueError:
            number = None
        with self.kernel.lock:
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
    for ident, frame in sys._current_frames().items():
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
