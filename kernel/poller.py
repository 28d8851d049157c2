"""The poller: file-descriptor readiness, edge-triggered, registered once.

Each fd is registered for both directions once, with EPOLLET, and stays
registered until ``forget`` (as Go's netpoller and tokio do), so waiting costs
no epoll_ctl call. An edge that arrives while nobody waits is remembered as a
"ready" flag, which the next waiter consumes and returns at once; its retry of
the system call then either succeeds or waits again. That closes the window
between a failed ``recv`` and the registration of its waiter.

The hot paths (``arm``, ``poll``) take the lock as ``acquire()`` and
try/finally ``release()``: on CPython 3.11 a ``with`` costs about 1.1k
instructions more, its ``__enter__`` and ``__exit__`` going through the slow
call path (2.1k for a ``Condition``, whose ``__enter__`` is Python). The
kernel's pools and primitives take theirs the same way on their hot paths.
"""
import os
import select
import selectors
import threading

from .errors import BusyResourceError, ClosedResourceError
from .traps import PARKED, READ

_EPOLL = hasattr(select, "epoll")
if _EPOLL:
    _IN = select.EPOLLIN | select.EPOLLPRI | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
    _OUT = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR
    _MASK = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
    _ENDS_READ = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
    _ENDS_WRITE = select.EPOLLHUP | select.EPOLLERR
    _ENDS = _ENDS_READ | _ENDS_WRITE
    _SEL_IN, _SEL_OUT = select.EPOLLIN, select.EPOLLOUT   # the fallback's events, mapped to these
else:  # pragma: no cover - selectors only: its events are the bits, with no hang-up flags
    _IN = _SEL_IN = selectors.EVENT_READ
    _OUT = _SEL_OUT = selectors.EVENT_WRITE
    _ENDS = _ENDS_READ = _ENDS_WRITE = 0
#: Events taken per poll call; more simply wait for the next call.
MAX_EVENTS = 1024


class _Fd:
    """One watched fd: who waits on it, and edges that came with nobody waiting.

    Index 0 is reading, 1 writing (``traps.READ``/``WRITE``). The fd is the
    key, not the object: a socket and its ``makefile()``, or ``sys.stdin`` and
    ``sys.stdin.buffer``, are one fd with one set of waiters. The first waiter
    of each direction has its own slots; waiters through other objects (rare)
    go to ``more``, so the common case stays at ~100 bytes, which C10K
    multiplies. ``reader_obj`` (``writer_obj``) means something only while
    there is a ``reader`` (``writer``): ``poll`` leaves it behind.

    ``can_read`` (``can_write``) says a wait for that direction returns at
    once: an edge came while nobody waited (the next wait consumes it), or a
    hang-up or an error ended the direction (``ended``: then it stays, since
    no edge comes after it). One test on the common path covers both.
    """

    __slots__ = ("fd", "obj", "reader", "writer", "reader_obj", "writer_obj", "more", "can_read", "can_write",
                 "ended")

    def __init__(self, fd, obj):
        self.fd = fd
        self.obj = obj                  # the object last armed with (see Poller.arm)
        self.reader = self.writer = None
        self.reader_obj = self.writer_obj = None
        self.more = None                # [mode, obj, task] of further waiters, through other objects
        self.can_read = self.can_write = False
        self.ended = 0   # 1 << mode for each direction a hang-up or an error ended

    def waiter(self, mode):
        return self.writer if mode else self.reader

    def waiter_obj(self, mode):
        return self.writer_obj if mode else self.reader_obj

    def set_waiter(self, mode, task, obj):
        if mode:
            self.writer, self.writer_obj = task, obj
        else:
            self.reader, self.reader_obj = task, obj

    def end(self, ev):
        """A hang-up or an error (``ev``): the directions it ends are ready for good."""
        if ev & _ENDS_READ:
            self.ended |= 1
            self.can_read = True
        if ev & _ENDS_WRITE:
            self.ended |= 2
            self.can_write = True

    def take_more(self, mode) -> list:
        """Remove and return the further waiters for ``mode``."""
        mine = [t for m, _, t in self.more if m == mode]
        self.more = [e for e in self.more if e[0] != mode] or None
        return mine

    def tasks(self):
        """(mode, task) of every waiter."""
        first = [(mode, t) for mode, t in enumerate((self.reader, self.writer)) if t is not None]
        return first + [(m, t) for m, _, t in self.more or ()]


def _fileno(f) -> int:
    return f if isinstance(f, int) else f.fileno()


def _same(a, b) -> bool:
    """The same waitable: one object, or one fd number given as an int."""
    return a is b or (type(a) is int and a == b)


class Poller:
    """Waits for fds on behalf of tasks; ``poll`` runs on the Main thread only.

    ``arm``/``abort`` follow the kernel's park protocol; ``wake_main`` breaks a
    blocking ``poll`` from another thread through an eventfd (a pipe where
    there is none). This class is epoll's; where there is none, ``Poller()``
    makes a ``_SelectorPoller``, which overrides the calls to the system.
    """

    def __new__(cls):
        if cls is Poller and not _EPOLL:
            cls = _SelectorPoller
        return object.__new__(cls)

    def __init__(self):
        self._lock = threading.Lock()
        self._fds = {}
        self.waiting = 0
        self.poke = None               # the kernel's: breaks Main's select() for a new waiter
        if hasattr(os, "eventfd"):
            self._wake_r = self._wake_w = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:  # pragma: no cover
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
        self._open()

    # -- the system's side (``_SelectorPoller`` overrides these) -------------
    def _open(self):
        self._ep = select.epoll()
        self._ep.register(self._wake_r, select.EPOLLIN)

    def _events(self, timeout) -> list:
        return self._ep.poll(-1 if timeout is None else timeout, MAX_EVENTS)

    def _watch(self, fd):
        """Register ``fd`` for both directions, edge-triggered, for good."""
        try:
            self._ep.register(fd, _MASK)
        except FileExistsError:
            self._ep.modify(fd, _MASK)

    def _rewatch(self, fd):
        """Register ``fd`` again: it may be a new file under a known number."""
        try:
            self._ep.modify(fd, _MASK)
        except FileNotFoundError:
            self._ep.register(fd, _MASK)

    def _unwatch(self, fd):
        try:
            self._ep.unregister(fd)
        except (OSError, KeyError, ValueError):
            pass  # closed already: epoll dropped it by itself

    def _close(self):
        self._ep.close()

    # -- waiting -------------------------------------------------------------
    # ``arm`` and ``abort`` are the kernel's park protocol for an I/O trap
    # ``(IO, f, mode)``, bound once as the trap's arm and abort: no call in
    # between. ``arm`` is every socket wait's hot path, so the common case
    # (the fd's first waiter of its direction) is written out inline.
    def arm(self, task):
        """Park ``task`` until the fd of its trap is ready; None means it already is."""
        _, f, mode = task.trap
        fd = f if type(f) is int else f.fileno()
        self._lock.acquire()
        try:
            st = self._fds.get(fd)
            if st is None:
                st = self._register(fd, f)
            elif type(f) is int or st.obj is not f:
                # A bare number, or another object than last time, may name a
                # new file since (closing a file drops it from epoll): re-arm
                # the fd (one system call); its waiters stay. Waiting again
                # through the same file object costs no system call.
                self._rearm(st)
                st.obj = f
            if mode:
                if st.can_write:       # an edge came with nobody waiting (consumed), or the end (it stays)
                    st.can_write = st.ended & 2 != 0
                    return None
                if st.writer is None:
                    st.writer, st.writer_obj = task, f
                else:
                    self._add_more(st, task, f, mode)
            else:
                if st.can_read:
                    st.can_read = st.ended & 1 != 0
                    return None
                if st.reader is None:
                    st.reader, st.reader_obj = task, f
                else:
                    self._add_more(st, task, f, mode)
            self.waiting += 1
        finally:
            self._lock.release()
        return PARKED

    def _add_more(self, st, task, f, mode):
        """A further waiter for ``mode``, through another object than the first (under the lock)."""
        if _same(st.waiter_obj(mode), f) or any(m == mode and _same(o, f) for m, o, _ in st.more or ()):
            raise BusyResourceError(
                f"another task is already waiting to {'read' if mode == READ else 'write'} fd {st.fd} "
                f"through {f!r}")
        if st.more is None:
            st.more = []
        st.more.append((mode, f, task))

    def abort(self, task) -> bool:
        _, f, mode = task.trap
        with self._lock:
            st = self._fds.get(_fileno(f))
            if st is None:
                return False
            if st.waiter(mode) is task:
                st.set_waiter(mode, None, None)
                for i, (m, o, t) in enumerate(st.more or ()):
                    if m == mode:        # the next waiter through another object moves up
                        del st.more[i]
                        st.set_waiter(mode, t, o)
                        st.more = st.more or None
                        break
            else:
                for i, (m, _, t) in enumerate(st.more or ()):
                    if m == mode and t is task:
                        del st.more[i]
                        st.more = st.more or None
                        break
                else:
                    return False
            self.waiting -= 1
            return True

    def _register(self, fd, f):
        st = _Fd(fd, f)
        self._watch(fd)
        self._fds[fd] = st
        return st

    def _rearm(self, st):
        # Perhaps a new file under the old number: its hang-up is not ours.
        if st.ended & 1:
            st.can_read = False
        if st.ended & 2:
            st.can_write = False
        st.ended = 0
        self._rewatch(st.fd)
        return st

    def forget(self, f) -> list:
        """Stop watching ``f`` before it is closed; return its waiters, each with an error.

        Like trio's ``notify_closing``: call it before closing an fd a task may
        wait on, so the number can be reused safely.
        """
        fd = _fileno(f)
        self._lock.acquire()
        try:
            st = self._fds.pop(fd, None)
            if st is None:
                return []
            self._unwatch(fd)
            woken = [t for _, t in st.tasks()]
            self.waiting -= len(woken)
        finally:
            self._lock.release()
        err = ClosedResourceError(9, f"fd {fd} was closed while a task waited on it")
        return [(t, err) for t in woken]

    # -- polling (Main only) -------------------------------------------------
    def poll(self, timeout):
        """Wait up to ``timeout`` seconds (None: forever); return the tasks to wake."""
        events = self._events(timeout)
        woken = []
        if not events:
            return woken
        self._lock.acquire()
        try:
            fds = self._fds
            for fd, ev in events:
                st = fds.get(fd)
                if st is None:
                    if fd == self._wake_r:
                        self._drain_wake()
                    continue
                if ev & _ENDS:
                    # Edge-triggered: the data and the hang-up that ends it may come
                    # in one event; a reader that takes the data and waits again
                    # would then wait for ever. The hang-up stays (see arm).
                    st.end(ev)
                if ev & _IN:
                    if st.reader is None:
                        st.can_read = True
                    else:
                        woken.append(st.reader)
                        st.reader = None
                        if st.more:
                            woken += st.take_more(0)
                if ev & _OUT:
                    if st.writer is None:
                        st.can_write = True
                    else:
                        woken.append(st.writer)
                        st.writer = None
                        if st.more:
                            woken += st.take_more(1)
            self.waiting -= len(woken)
        finally:
            self._lock.release()
        return woken

    def _drain_wake(self):
        try:
            os.read(self._wake_r, 8)
        except BlockingIOError:
            pass

    def wake_main(self):
        """Break a blocking ``poll`` (from any thread)."""
        try:
            os.write(self._wake_w, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except BlockingIOError:
            pass  # the counter is already non-zero: a wake-up is pending

    def snapshot(self) -> list:
        """(fd, mode, task) for every waiter, for the stepper and the monitor."""
        with self._lock:
            return [(st.fd, mode, t) for st in self._fds.values() for mode, t in st.tasks()]

    def close(self):
        self._close()
        os.close(self._wake_r)
        if self._wake_w != self._wake_r:  # pragma: no cover
            os.close(self._wake_w)


class _SelectorPoller(Poller):  # pragma: no cover - where there is no epoll (tests force it on Linux)
    """The ``selectors`` fallback: level-triggered, so an fd is selected only while someone waits on it.

    Its events are mapped to epoll's bits, with no hang-up flags; every arm
    and poll brings the fd's selected directions up to date, and a new
    waiter re-enters Main's ``select()`` (``poke``).
    """

    def _open(self):
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake_r, selectors.EVENT_READ)

    def _events(self, timeout) -> list:
        self._selected = [(k.fd, (_SEL_IN if m & selectors.EVENT_READ else 0) |
                           (_SEL_OUT if m & selectors.EVENT_WRITE else 0)) for k, m in self._sel.select(timeout)]
        return self._selected

    def _watch(self, fd):
        pass             # selected while waited on (``_update``)

    _rewatch = _watch

    def _unwatch(self, fd):
        try:
            self._sel.unregister(fd)
        except (KeyError, ValueError, OSError):
            pass

    def _close(self):
        self._sel.close()

    def arm(self, task):
        fd = _fileno(task.trap[1])      # read first: once parked, the task is its waker's
        got = Poller.arm(self, task)
        if got is PARKED:
            self._update(fd)
            self.poke()
        return got

    def poll(self, timeout):
        woken = Poller.poll(self, timeout)
        for fd, _ in self._selected:
            if fd != self._wake_r:
                self._update(fd)
        return woken

    def _update(self, fd):
        with self._lock:
            st = self._fds.get(fd)
            events = 0 if st is None else \
                (selectors.EVENT_READ if st.reader else 0) | (selectors.EVENT_WRITE if st.writer else 0)
            try:
                if events:
                    try:
                        self._sel.modify(fd, events)
                    except KeyError:
                        self._sel.register(fd, events)
                else:
                    self._sel.unregister(fd)
            except (KeyError, ValueError, OSError):
                pass
