"""Signals inside the kernel, and the graceful stop that SIGTERM and SIGINT begin.

Python runs a signal handler on the process's main thread between two
bytecodes of whatever that thread was doing, perhaps inside one of the
kernel's locks. So the handler here takes no lock: it puts the signal number
on a ``queue.SimpleQueue`` (whose ``put`` is documented to be safe in a
signal handler), and a small thread does the rest with ordinary locks: it
hands the signal to the receivers open for it, or begins a graceful stop.
That thread starts with the first signal (through ``_thread``, which takes
no Python lock either), so a ``run`` that gets none costs no thread. ``run`` installs this only on the process's main thread (the
only one Python delivers signals to), for SIGINT and SIGTERM while their
handlers are still the default ones, and puts the previous handlers back as
it returns.

The graceful stop, in order:

1. ``stopping()`` is set;
2. every stop hook runs, each in its own task: a server's hook is
   ``shutdown(stop_grace)``, so it stops accepting, lets the requests in
   flight finish for up to ``stop_grace`` seconds (``STOP_GRACE``), closes
   idle keep-alive connections, then cancels what is left;
3. once every hook has ended, the main task is cancelled if it is still
   running (a server's ``serve_forever`` has usually returned by then);
4. ``run``'s shutdown protocol runs, and ``run`` returns the main task's
   value, or raises ``Terminated`` (SIGTERM: a ``SystemExit`` whose code is
   0) if the stop had to cancel it; after SIGINT it raises
   ``KeyboardInterrupt``, as a Ctrl-C always has.

A second SIGINT during the stop raises ``KeyboardInterrupt`` at once, as a
second Ctrl-C does under ``asyncio.run``: the stop is cut short. A repeated
SIGTERM is ignored: a supervisor that signals a whole process group reaches
``run_workers``' children twice, directly and through their parent.
"""
import _thread
import itertools
import logging
import queue
import signal
import threading

from .awaitable import coroutine
from .current import current_kernel
from .dispatchers import Dispatchers
from .errors import Cancelled
from .sync import Event
from .traps import spawn

log = logging.getLogger("genloop")

#: Seconds a graceful stop lets a server's requests in flight finish; well
#: inside the 30 s after which Kubernetes and systemd send SIGKILL.
STOP_GRACE = 10.0
#: The signals ``run`` turns into a graceful stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(SystemExit):
    """``run`` ended by a graceful stop that had to cancel the main task.

    A ``SystemExit`` with code 0: uncaught, the process exits with status 0
    and no traceback. ``signal`` is the signal that began the stop (None for
    ``request_stop``).
    """

    def __init__(self, signum=None):
        super().__init__(0)
        self.signal = signum


class _Stop:
    """One kernel's graceful-stop state: its hooks, its event, what began it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.hooks = {}
        self.keys = itertools.count()
        self.event = Event()
        self.begun = False
        self.signal = None
        self.root = None
        self.cancelled_root = False


_state_lock = threading.Lock()


def _state(kernel=None) -> _Stop:
    kernel = kernel or current_kernel()
    if kernel is None:
        raise RuntimeError("no kernel is running on this thread")
    state = kernel.graceful_stop
    if state is None:
        with _state_lock:
            if kernel.graceful_stop is None:
                kernel.graceful_stop = _Stop()
            state = kernel.graceful_stop
    return state


class StopHook:
    """What ``on_stop`` returns: ``remove()`` takes the hook back (idempotent)."""

    __slots__ = ("_state", "_key")

    def __init__(self, state, key):
        self._state, self._key = state, key

    def remove(self) -> None:
        with self._state.lock:
            self._state.hooks.pop(self._key, None)


def on_stop(fn, *args) -> StopHook:
    """Run generator function ``fn(*args)`` in a task of its own when a graceful stop begins.

    Servers register their ``shutdown`` this way. The stop waits for every
    hook to end before it cancels the main task, so a hook bounds its own time.
    """
    state = _state()
    with state.lock:
        key = next(state.keys)
        state.hooks[key] = (fn, args)
    return StopHook(state, key)


def stopping() -> Event:
    """The running kernel's graceful-stop ``Event``: set once a stop has begun."""
    return _state().event


def request_stop(kernel=None, signum=None) -> bool:
    """Begin a graceful stop, as SIGTERM does; False if one has begun already.

    From a task, or from any thread given the ``kernel`` (``current_kernel()``
    of one of its threads).
    """
    kernel = kernel or current_kernel()
    state = _state(kernel)
    with state.lock:
        if state.begun:
            return False
        state.begun = True
        state.signal = signum
        hooks = list(state.hooks.values())
    state.event.set()
    kernel.new_task(_stop, (state, hooks), Dispatchers.Main, "graceful-stop", None)
    return True


def _stop(state, hooks):
    tasks = []
    for fn, args in hooks:
        tasks.append((yield from spawn(fn, *args, name=f"stop:{getattr(fn, '__qualname__', fn)}")))
    for task in tasks:
        try:
            yield from task.join()
        except Cancelled:
            raise
        except Exception:  # noqa: BLE001 - one hook's failure must not stop the others
            log.exception("stop hook %r failed", task.name)
    root = state.root
    if root is not None and not root.done:
        state.cancelled_root = True
        root.cancel()


class SignalReceiver:
    """Signals delivered to a task: ``with signal_receiver(SIGHUP) as signals:``.

    ``signum = yield from signals.get()`` (or ``await signals.get()``) waits
    for the next one. A signal that arrives again while it is still pending is
    coalesced, as the operating system does; signals still pending when the
    block ends are dropped. While a receiver for SIGINT or SIGTERM is open,
    that signal comes here instead of beginning a graceful stop.
    """

    def __init__(self, hub, signums):
        self._hub = hub
        self.signums = tuple(signums)
        self._lock = threading.Lock()
        self._pending = {}               # an insertion-ordered set
        self._ready = Event()

    def __enter__(self):
        self._hub.add(self)
        return self

    def __exit__(self, *exc):
        self._hub.remove(self)

    def _deliver(self, signum):
        with self._lock:
            self._pending[signum] = None
            self._ready.set()

    @coroutine
    def get(self):
        """The next signal's number (a trap)."""
        while True:
            with self._lock:
                if self._pending:
                    signum = next(iter(self._pending))
                    del self._pending[signum]
                    if not self._pending:
                        self._ready.clear()
                    return signum
            yield from self._ready.wait()


def signal_receiver(*signums) -> SignalReceiver:
    """A context manager receiving ``signums`` inside the kernel (trio's ``open_signal_receiver``).

    Open it in a task on Main of a kernel that ``run`` started on the
    process's main thread; elsewhere it raises ``RuntimeError``.
    """
    kernel = current_kernel()
    hub = kernel and kernel.signal_hub
    if hub is None or not hub.live:
        raise RuntimeError("signals reach only a kernel that run() started on the process's main thread")
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("open signal_receiver in a task on Dispatchers.Main (signal handlers are set there)")
    if not signums:
        raise ValueError("name at least one signal")
    return SignalReceiver(hub, signums)


class Hub:
    """The process's signal handlers for one ``run`` (``install`` makes it)."""

    def __init__(self, kernel, state, live):
        self.kernel = kernel
        self.state = state
        self.live = live
        self._previous = {}           # signum -> the handler to put back
        self._for_stop = set()        # signals installed to begin a graceful stop
        self._receivers = {}          # signum -> [SignalReceiver]; read by the handler without a lock
        self._lock = threading.Lock()
        self._stopping = False        # set by the handler itself, before the thread sees the signal
        self._inbox = queue.SimpleQueue()
        self._running = threading.Lock()     # held while the dispatching thread runs
        if live:
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
                    self._install(sig)
                    self._for_stop.add(sig)

    @property
    def root(self):
        return self.state.root

    @root.setter
    def root(self, task):
        """The main task: the one a graceful stop cancels last."""
        self.state.root = task

    def _install(self, sig):
        if sig not in self._previous:
            self._previous[sig] = signal.signal(sig, self._handler)

    def _handler(self, signum, frame):
        # The main thread, between two bytecodes, maybe inside a kernel lock: no lock here
        # (a non-blocking acquire of _running, which says whether the thread is up, never waits).
        if self._running.acquire(False):
            _thread.start_new_thread(self._dispatch, ())
        if self._receivers.get(signum):
            self._inbox.put(signum)
        elif signum in self._for_stop:
            if self._stopping:
                if signum == signal.SIGINT:
                    raise KeyboardInterrupt     # the second Ctrl-C: stop now
                return
            self._stopping = True
            self._inbox.put(signum)

    def _dispatch(self):
        try:
            while (signum := self._inbox.get()) is not None:
                with self._lock:
                    receivers = list(self._receivers.get(signum, ()))
                for receiver in receivers:
                    receiver._deliver(signum)
                if not receivers and signum in self._for_stop:
                    self._stopping = True
                    request_stop(self.kernel, signum)
        finally:
            self._running.release()

    def add(self, receiver):
        for sig in receiver.signums:
            self._install(sig)          # first: SIGKILL and the like raise here, before any change
        with self._lock:
            for sig in receiver.signums:
                self._receivers.setdefault(sig, []).append(receiver)

    def remove(self, receiver):
        with self._lock:
            for sig in receiver.signums:
                listeners = self._receivers.get(sig, [])
                if receiver in listeners:
                    listeners.remove(receiver)
                if not listeners and sig not in self._for_stop and sig in self._previous:
                    signal.signal(sig, self._previous.pop(sig))

    def close(self) -> None:
        """Put the previous handlers back and stop the thread (on the main thread, as run ends)."""
        if not self.live:
            return
        self.live = False
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()
        if self._running.locked():
            self._inbox.put(None)
            self._running.acquire()       # the thread has ended
            self._running.release()

    def outcome(self, root):
        """What ``run`` raises for the main task ``root`` (None: return its value)."""
        exc = root.exception
        state = self.state
        if state.signal == signal.SIGINT and (exc is None or isinstance(exc, Cancelled)):
            return KeyboardInterrupt()
        if state.cancelled_root and isinstance(exc, Cancelled):
            return Terminated(state.signal)
        return exc


def install(kernel) -> Hub:
    """Called by ``run``: on the process's main thread, turn SIGINT and SIGTERM into a graceful stop."""
    hub = Hub(kernel, _state(kernel), threading.current_thread() is threading.main_thread())
    kernel.signal_hub = hub
    return hub
