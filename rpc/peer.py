"""Peer: one msgpack-rpc connection, either end.

Both ends can call, notify and answer on the same connection, as the spec
allows. One reader task decodes what arrives: responses go to their callers
by msgid, requests to the registered methods. What callers and handlers
queue leaves when the thread's turn of steps ends (``Kernel.at_turn_end``),
so the calls made by every coroutine of the turn go in one system call and
no task is woken to send them; a writer task sends only what a full socket
did not take (and everything queued from a thread that runs no turns).
"""
import itertools
import logging
import socket
import threading

from genloop.kernel import Cancelled, Dispatchers, Event, Semaphore, TaskGroup, coroutine, spawn, timeout_after, with_context
from genloop.kernel.traps import IO, PARK, PARKED, READ
from genloop.net import Stream
from genloop.net.stream import READ_SIZE

from .errors import ConnectionLost, RemoteError
from .protocol import MAX_MSGID, REQUEST, RESPONSE, Connection, ProtocolError, _as_array, new_packer

log = logging.getLogger("genloop.rpc")

#: Queued output above which the reader stops taking new requests (back-pressure):
#: checked after every request it runs, not once per read.
HIGH_WATER = 4 * 1024 * 1024
#: Requests of one connection served in tasks at once (coroutine and blocking
#: methods); past it the reader waits for one to finish before reading on.
MAX_IN_FLIGHT = 128
#: Distinct unknown notification names logged per connection; the rest are dropped unlogged.
MAX_UNKNOWN_LOGGED = 16

PLAIN, COROUTINE, BLOCKING = "plain", "coroutine", "blocking"


class Method:
    """A registered method and how it runs: inline, as a coroutine, or on IO."""

    __slots__ = ("fn", "kind", "with_peer")

    def __init__(self, fn, kind, with_peer):
        self.fn, self.kind, self.with_peer = fn, kind, with_peer


def method_kind(fn, blocking: bool) -> str:
    import inspect
    if inspect.isgeneratorfunction(fn) or inspect.iscoroutinefunction(fn):
        if blocking:
            raise ValueError("only plain functions can be marked blocking")
        return COROUTINE
    return BLOCKING if blocking else PLAIN


class Registry(dict):
    """name -> Method, with a decorator form."""

    def register(self, name, fn=None, *, blocking=False, with_peer=False):
        """Register ``fn`` as ``name`` (or use as ``@registry.register("name")``).

        Generator functions run as coroutines, one task per request; plain
        functions run inline in the reader (keep them quick) or, marked
        ``blocking``, on ``Dispatchers.IO``. ``with_peer`` passes the calling
        ``Peer`` first, so a method can call back into its caller.
        """
        if fn is None:
            return lambda f: self.register(name, f, blocking=blocking, with_peer=with_peer) or f
        self[name] = Method(fn, method_kind(fn, blocking), with_peer)
        return fn


#: Where an answer wait's trap ``(PARK, arm, abort, WAITS, method, args)`` holds the call.
METHOD, ARGS = 4, 5


class _Callback:
    """A ``call_cb`` in flight, to the peer just like a caller parked on its answer.

    Both kinds of waiter hold the call in ``trap`` (at ``METHOD``, ``ARGS``),
    its msgid in ``_waiting``, and take the answer through ``wake`` or
    ``wake_exc``: here they run the callback, in the reader.
    """

    __slots__ = ("trap", "_waiting", "_pool", "callback")

    def __init__(self, method, args, callback, pool):
        self.trap = (None, None, None, None, method, args)
        self._waiting = None
        self._pool = pool         # as a task's: the home pool when made on its thread (see Peer._home)
        self.callback = callback

    def wake(self, result):
        self._run(result, None)

    wake_here = wake

    def wake_exc(self, exc):
        self._run(None, exc)

    def _run(self, result, error):
        try:
            self.callback(result, error)
        except Exception:
            log.exception("rpc callback for %s failed", self.trap[METHOD])


def _encode(pack, msgid, error, result) -> bytes:
    """The response ``[1, msgid, error, result]`` packed by ``pack``; a result msgpack cannot encode answers a TypeError instead."""
    try:
        return pack((RESPONSE, msgid, error, result))
    except (TypeError, ValueError, OverflowError) as e:
        return pack((RESPONSE, msgid, ["TypeError", f"result not serialisable: {e}"], None))


#: What a caller parked on an answer is doing, in the step view and the monitor.
WAITS = "waits for an rpc answer"


class _Elsewhere(Exception):
    """Raised by the arm of a call made off the thread that owns a confined peer: the call hops there."""


def _check_method(method) -> str:
    """``method`` if it is a str (off the hot path: a subclass), else the TypeError of a bad name."""
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, got {type(method).__name__}")
    return method


class Peer:
    """A msgpack-rpc endpoint over a ``Stream``; start it with ``start()``.

    Both ends of a connection are peers: ``Client`` is the one that
    connected, the server runs one per accepted connection.
    ``max_in_flight`` bounds the requests it serves in tasks at once, and
    past ``HIGH_WATER`` bytes of unsent answers it stops reading requests:
    a peer that sends requests and never reads cannot make it grow. While
    the reader waits for a free slot it reads no answers either, so methods
    that call back into the same peer and wait for the answer must number
    fewer than ``max_in_flight`` at once.
    """

    def __init__(self, stream: Stream, methods: Registry | None = None, *, dispatcher=None, name="rpc",
                 max_in_flight: int = MAX_IN_FLIGHT):
        self.stream = stream
        self.sock = stream.socket
        self.methods = methods if methods is not None else Registry()
        self.dispatcher = dispatcher
        self.name = name
        # Who owns what. The reader task alone (one step at a time, on
        # whichever thread: the run queue hands it over) owns _proto's
        # unpacker, _replies and _unknown: no lock. The rest is shared:
        # _proto's packer, _packer, _next_msgid, _pending (msgid ->
        # waiter), _out, _sending, _lost. Who may touch it depends on where
        # the reader runs (``start`` decides, once):
        # - On Main (the common case: a client or server started from Main),
        #   the peer is *confined*: ``_home`` is Main's pool and every access
        #   happens on Main's thread, so the hot paths (a call's arm, the
        #   answers of a read, the turn-end flush) take no lock. It holds
        #   because the callers that touch the state run there: the reader,
        #   the writer and the handler tasks (on the reader's dispatcher), a
        #   caller on Main (its park's arm runs on its own thread) and its
        #   cancel (the kernel hands a cancel of a Main task to Main). The
        #   others hand over to Main: a call from a task elsewhere hops there
        #   (``with_context``), and ``call_cb``, ``notify`` and ``close`` from
        #   another thread go through ``call_soon``. The cold paths still take
        #   the lock (uncontended, on one thread), so they are written once.
        # - Elsewhere (a reader on Default or IO), ``_home`` is None and
        #   callers, handler tasks, cancellers and turn-end flushes come from
        #   any thread: everything shared is under _lock. The hot paths take
        #   it as lock.acquire() and try/finally release(): half the
        #   instructions of ``with`` on CPython 3.11.
        self._proto = Connection()
        self._replies = new_packer()      # the reader's: its inline answers need no lock to encode
        self._packer = new_packer()       # requests and the answers of handler tasks
        self._lock = threading.Lock()
        self._home = None
        self._next_msgid = itertools.count().__next__     # masked to 32 bits: 2**32 - 1, then 0 again
        self._pending = {}
        self._out = bytearray()
        # True while someone owns the sending: a flush is due at a turn's end,
        # or the writer task sends; who sets it sends everything queued meanwhile.
        self._sending = False
        self._flush_bound = self._flush
        self._flush_lock = self._lock     # None once confined: the flush runs on home (see __init__)
        self._at_turn_end = None          # the home kernel's Kernel.at_turn_end, once started
        # The answer wait's park protocol, bound once: per call, only the trap tuple is new.
        self._arm_answer, self._abort_answer = self._arm_answer, self._abort_answer
        self._wakeup = Event()        # the writer task's: the socket was full, or no turn end flushes
        self._drained = Event()
        self._drained.set()
        self._lost = None
        self.closed = Event()
        self._reader = self._writer = None
        # Requests being served in tasks: they end with the connection, whose
        # answers nobody could read any more.
        self._handlers = TaskGroup()
        self._in_flight = Semaphore(max_in_flight)
        self._unknown = set()     # unknown notification names logged already

    def __repr__(self):
        return f"<Peer {self.name} {self.stream.peer}>"

    @coroutine
    def start(self):
        """Start the reader and writer tasks (a trap)."""
        self._reader = yield from spawn(self._read_loop, name=f"{self.name}-reader")
        kernel = self._reader.kernel
        if self._reader._pool is kernel.main_pool and self.dispatcher in (None, Dispatchers.Main):
            # Confined (see __init__): the writer lands where the reader does,
            # and the handler tasks run on self.dispatcher, else the reader's.
            self._home = kernel.main_pool
            self._flush_lock = None
        self._at_turn_end = kernel.at_turn_end
        self._writer = yield from spawn(self._write_loop, name=f"{self.name}-writer")
        return self

    # -- calling -------------------------------------------------------------
    @coroutine
    def call(self, method: str, *args, timeout: float | None = None):
        """Call ``method(*args)`` on the peer and return its result (a trap).

        Raises ``RemoteError`` if it failed there, ``ConnectionLost`` if the
        connection drops first, ``Timeout`` after ``timeout`` seconds (the
        call is then forgotten: a late answer is dropped).
        """
        if timeout is not None:
            return (yield from timeout_after(timeout, self._wait, method, args))
        try:        # _wait inlined: the hot path (a try costs nothing until it catches)
            return (yield (PARK, self._arm_answer, self._abort_answer, WAITS, method, args))
        except _Elsewhere:
            pass        # not in the handler: a failure of the hop would chain this exception
        return (yield from with_context(Dispatchers.Main, self._wait, method, args))

    @coroutine
    def _wait(self, method, args):
        """Send the call and wait for its answer (a generator, for ``timeout_after`` and the hop to Main)."""
        try:
            return (yield (PARK, self._arm_answer, self._abort_answer, WAITS, method, args))
        except _Elsewhere:
            pass
        return (yield from with_context(Dispatchers.Main, self._wait, method, args))

    def _arm_answer(self, waiter):
        """Send the call in ``waiter.trap`` and record ``waiter`` for its answer.

        The park's ``arm`` (the kernel holds the task's wait state): no
        answer can come before the caller is parked. ``ConnectionLost`` is
        raised in the caller. A caller on the confined peer's home takes no
        lock (see __init__); a caller elsewhere gets ``_Elsewhere`` and hops
        home; without a home, the lock.
        """
        if waiter._pool is not self._home:      # a task's pool is never None: no home, no match
            return self._arm_locked(waiter)
        trap = waiter.trap
        if self._lost is not None:
            raise ConnectionLost(f"{trap[METHOD]}: {self._lost}")
        method = trap[METHOD]       # _send_request inlined: the hot path
        if method.__class__ is not str:
            method = _check_method(method)
        msgid = self._next_msgid() & MAX_MSGID
        self._out += self._packer.pack((REQUEST, msgid, method, trap[ARGS]))
        self._pending[msgid] = waiter
        waiter._waiting = msgid       # for _abort_answer
        if not self._sending:
            self._start_sending()
        return PARKED

    def _arm_locked(self, waiter):
        """``_arm_answer`` for a peer without a home: under the lock, from any thread."""
        if self._home is not None:
            raise _Elsewhere()
        trap = waiter.trap
        lock = self._lock
        lock.acquire()      # not ``with``: see _lock
        try:
            if self._lost is not None:
                raise ConnectionLost(f"{trap[METHOD]}: {self._lost}")
            self._send_request(waiter, trap)
            if not self._sending:
                self._start_sending()
        finally:
            lock.release()
        return PARKED

    def _send_request(self, waiter, trap):
        """Queue the request of ``trap`` with the next msgid and record ``waiter`` for its answer.

        By the owner of the shared state (see __init__). ``trap[ARGS]`` is a
        tuple (call's ``*args``) or a list (``call_cb`` made it one).
        """
        method = trap[METHOD]
        if method.__class__ is not str:
            method = _check_method(method)
        msgid = self._next_msgid() & MAX_MSGID
        self._out += self._packer.pack((REQUEST, msgid, method, trap[ARGS]))
        self._pending[msgid] = waiter
        waiter._waiting = msgid       # for _abort_answer

    def _abort_answer(self, task):
        """Forget the call ``task`` waits for (cancelled, timed out): a late answer is dropped."""
        with self._lock:      # read _pending under it: _lose swaps the table
            pending = self._pending
            if pending.get(task._waiting) is task:
                del pending[task._waiting]
                return True
            return False

    def call_cb(self, method: str, args, callback) -> None:
        """Callback style: send the call now; later ``callback(result, error)`` runs in the reader.

        ``error`` is None on success, else the ``RemoteError`` or
        ``ConnectionLost``. A plain function: no ``yield from``.
        """
        if method.__class__ is not str:
            method = _check_method(method)
        if type(args) is not tuple:
            args = _as_array(args)
        home = self._home
        if home is not None and not home.on_own_thread():
            new_packer().pack(args)         # a TypeError here, in the caller, as on home
            waiter = _Callback(method, args, callback, home)
            home.call_soon(lambda: self._call_cb_home(waiter))
            return
        self._call_cb_home(_Callback(method, args, callback, home))

    def _call_cb_home(self, waiter):
        try:
            if self._home is None:
                self._arm_locked(waiter)
            else:
                self._arm_answer(waiter)
        except ConnectionLost as e:
            waiter.callback(None, e)

    def notify(self, method: str, *args) -> None:
        """Send a notification (no answer comes back)."""
        home = self._home
        if home is not None and not home.on_own_thread():
            if self._lost is not None:
                raise ConnectionLost(f"{method}: {self._lost}")
            data = Connection().send_notification(method, args)     # encoded here: a TypeError is the caller's
            home.call_soon(lambda: self._queue_home(data))
            return
        with self._lock:
            if self._lost is not None:
                raise ConnectionLost(f"{method}: {self._lost}")
            self._queue_locked(self._proto.send_notification(method, args))

    def _queue_home(self, data):
        """Queue bytes a thread handed to the confined peer's home (dropped if the connection is gone)."""
        with self._lock:
            if self._lost is None:
                self._queue_locked(data)

    # -- sending -------------------------------------------------------------
    def _queue_locked(self, data):
        self._out += data
        if not self._sending:
            self._start_sending()

    def _start_sending(self):
        """Own the sending (under the lock): flush at this thread's turn end, else wake the writer task."""
        self._sending = True
        at_turn_end = self._at_turn_end      # False on a thread of no kernel or of another one
        if at_turn_end is None or not at_turn_end(self._flush_bound):
            self._wakeup.set()

    def _flush(self):
        """Send what this thread's turn queued, straight to the socket; past a full one the writer task goes on.

        The send is made under the lock (it does not block): bytes other
        threads queue meanwhile wait for it and so leave after it, and one
        lock serves the whole flush.
        """
        failed = None
        lock = self._flush_lock
        if lock is not None:
            lock.acquire()      # not ``with``: see _lock
        try:
            data = self._out
            sent = self.sock.sock.send(data) if data else 0
            if sent == len(data):
                self._out = bytearray()
                self._sending = False
                if not self._drained.is_set():      # cleared only under this lock
                    self._drained.set()
                return
            del data[:sent]     # the rest goes first: a TLS send must be retried with the same bytes
        except BlockingIOError:
            pass        # full: the writer task waits for room
        except OSError as e:
            failed = e
        finally:
            if lock is not None:
                lock.release()
        if failed is not None:
            self._lose(failed)
        else:
            self._wakeup.set()

    def _write_loop(self):
        """Send what a flush left (the socket was full) or what came from a thread without turns."""
        sock = self.sock
        wakeup = self._wakeup
        try:
            while True:
                yield from wakeup.wait()
                wakeup.clear()        # set again only by the next owner of _sending, after we release it
                while True:
                    with self._lock:
                        data, self._out = self._out, bytearray()
                        if not data:
                            self._sending = False
                            self._drained.set()
                            break
                    yield from sock.sendall(data)
        except OSError as e:
            self._lose(e)

    # -- receiving -----------------------------------------------------------
    def _read_loop(self):
        recv = self.sock.recv
        receive = self._proto.receive_split
        # A short read leaves a stream socket drained (epoll(7)): then wait for
        # its next edge rather than try a recv bound to fail (an exception
        # per read). A plain socket is read directly, its waits being ours;
        # TLS goes through net's Socket, whose layer may hold decrypted bytes.
        raw = self.sock.sock
        plain = type(raw) is socket.socket
        raw_recv = raw.recv
        drained = (IO, raw, READ)
        try:
            while True:
                try:
                    data = raw_recv(READ_SIZE) if plain else (yield from recv(READ_SIZE))
                except BlockingIOError:     # the edge we woke for was an old one
                    yield drained
                    continue
                if not data:
                    self._lose(ConnectionLost("the peer closed the connection"))
                    return
                responses, requests = receive(data)
                if responses:
                    self._answer(responses)
                if requests:
                    yield from self._run_requests(requests)
                if plain and len(data) < READ_SIZE:
                    yield drained
        except ProtocolError as e:
            self._answer([f for f in e.messages if f[0] == RESPONSE])   # answers that arrived intact before the bad bytes
            log.warning("%r: dropping the connection: %s", self, e)
            self._lose(ConnectionLost(f"protocol error: {e}"))
        except OSError as e:
            self._lose(ConnectionLost(str(e)))
        except Cancelled:
            self._lose(ConnectionLost("the connection was closed"))
            raise

    def _run_requests(self, frames):
        """Run the requests and notifications ``frames``, pausing under back-pressure.

        A plain method runs right here, its answer packed by the reader's
        own packer into ``answers``, which are queued under one lock, before
        the reader may wait and at the end; the other kinds go to
        ``_dispatch``.
        """
        methods = self.methods
        pack = self._replies.pack
        answers = bytearray()
        answer = [RESPONSE, None, None, None]   # every inline success packed from this one array: no allocation each
        for frame in frames:
            if frame[0] == REQUEST:
                _, msgid, name, params = frame
            else:
                _, name, params = frame
                msgid = None
            method = methods.get(name)
            if method is not None and method.kind is PLAIN:
                try:
                    result = method.fn(self, *params) if method.with_peer else method.fn(*params)
                except Exception as e:
                    error = self._error_of(msgid, name, e)
                    if error is not None:
                        answers += _encode(pack, msgid, error, None)
                else:
                    if msgid is not None:
                        answer[1] = msgid
                        answer[3] = result
                        try:        # _encode inlined: this is every answer's path
                            answers += pack(answer)
                        except (TypeError, ValueError, OverflowError):
                            answers += _encode(pack, msgid, None, result)     # answers the TypeError
            else:
                answers = yield from self._dispatch(msgid, name, params, method, answers)
            if len(self._out) + len(answers) > HIGH_WATER:
                answers = self._queue_answers(answers)
                if self._backlogged():
                    yield from self._drained.wait()
        self._queue_answers(answers)

    def _queue_answers(self, answers: bytearray) -> bytearray:
        """Queue the gathered inline answers (if the connection still stands); returns a fresh buffer."""
        if answers:
            if self._home is not None:      # confined: the reader is on home, no lock (see __init__)
                if self._lost is None:
                    self._queue_locked(answers)
                return bytearray()
            lock = self._lock
            lock.acquire()      # not ``with``: see _lock
            try:
                if self._lost is None:
                    self._queue_locked(answers)
            finally:
                lock.release()
            return bytearray()
        return answers

    def _backlogged(self) -> bool:
        """Is the output queue over HIGH_WATER? Then stop taking requests until it drains.

        Only a batch that held requests may pause the reader: answers must
        always be read, or two peers whose calls fill each other's buffers
        would each wait for the other to read first. Checked and cleared
        under the lock the writer sets ``_drained`` under, so a drain on
        another thread cannot slip in between and be missed.
        """
        with self._lock:
            if len(self._out) <= HIGH_WATER:
                return False
            self._drained.clear()
            return True

    def _answer(self, responses) -> None:
        """Hand ``responses`` to their callers.

        A response nobody waits for (timed out, cancelled, never ours) is
        dropped. Confined, the reader is on home and wakes each caller as
        it finds it; else one lock for the whole read, then the wake-ups
        outside it.
        """
        if self._home is not None:
            pop = self._pending.pop       # a callback's close() empties this very table (_lose)
            for _, msgid, error, result in responses:
                waiter = pop(msgid, None)
                if waiter is not None:
                    if error is None:
                        waiter.wake_here(result)      # on home, which is Main: no thread check
                    else:
                        waiter.wake_exc(RemoteError(error, waiter.trap[METHOD]))
            return
        answered = []
        lock = self._lock
        lock.acquire()      # not ``with``: see _lock
        try:
            pop = self._pending.pop
            for frame in responses:
                waiter = pop(frame[1], None)
                if waiter is not None:
                    answered.append((waiter, frame))
        finally:
            lock.release()
        for waiter, (_, _, error, result) in answered:
            if error is None:
                waiter.wake(result)
            else:
                waiter.wake_exc(RemoteError(error, waiter.trap[METHOD]))

    def _dispatch(self, msgid, name, params, method, answers: bytearray):
        """A request or notification (msgid None) whose method is unknown or runs in a task.

        An unknown method's answer goes into ``answers``; the others get a
        task, once a slot is free (the gathered ``answers`` are queued
        before the reader may wait). Returns the buffer to gather into next.
        """
        if method is None:
            if msgid is not None:
                answers += _encode(self._replies.pack, msgid, ["NoMethodError", f"unknown method {name!r}"], None)
            elif name not in self._unknown and len(self._unknown) < MAX_UNKNOWN_LOGGED:
                self._unknown.add(name)
                log.warning("%r: notifications for unknown method %r dropped (logged once per connection)",
                            self, name)
            return answers
        if method.with_peer:
            params = [self, *params]
        answers = self._queue_answers(answers)
        yield from self._in_flight.acquire()          # _serve releases it
        yield from self._handlers.spawn(self._serve, msgid, name, method, params,
                                        dispatcher=self.dispatcher, name=f"{self.name}:{name}")
        return answers

    @coroutine       # so that an async def method's coroutine can be awaited here
    def _serve(self, msgid, name, method, params):
        try:
            if self._lost is not None:
                return      # spawned as the connection died, after _lose cancelled the others
            if method.kind is BLOCKING:
                result = yield from with_context(Dispatchers.IO, method.fn, *params)
            else:
                result = yield from method.fn(*params)
        except Exception as e:
            error = self._error_of(msgid, name, e)
            if error is not None:
                self._respond(msgid, error, None)
        else:
            if msgid is not None:
                self._respond(msgid, None, result)
        finally:
            self._in_flight.release()

    def _error_of(self, msgid, name, exc):
        """The error a failed request answers; a failed notification (no answer) is logged instead."""
        if msgid is None:
            log.warning("%r: notification %s failed: %r", self, name, exc)
            return None
        return [type(exc).__name__, str(exc)]

    def _respond(self, msgid, error, result):
        """Queue one answer, encoded with the connection's packer (from a handler task, on any thread)."""
        with self._lock:
            if self._lost is not None:
                return
            self._queue_locked(_encode(self._packer.pack, msgid, error, result))

    # -- ending --------------------------------------------------------------
    def _lose(self, exc):
        """Fail every pending call with ``ConnectionLost``; idempotent."""
        with self._lock:
            if self._lost is not None:
                return
            lost = self._lost = exc if isinstance(exc, ConnectionLost) else ConnectionLost(str(exc))
            pending, self._pending = self._pending, {}
            waiters = list(pending.values())
            pending.clear()     # a confined reader may still be popping from it (a callback closed the peer)
        for waiter in waiters:
            waiter.wake_exc(ConnectionLost(f"{waiter.trap[METHOD]}: {lost}"))
        self._drained.set()
        self.closed.set()
        self._handlers.cancel()
        if self._writer is not None:
            self._writer.cancel()
        if self._reader is not None:
            self._reader.cancel()
        self.stream.close()

    def close(self) -> None:
        """Close the connection; calls in flight fail with ``ConnectionLost``.

        From a thread other than a confined peer's home, the closing is
        handed there and happens at its next turn.
        """
        home = self._home
        if home is not None and not home.on_own_thread():
            if self._lost is None:
                home.call_soon(self.close)
            return
        self._lose(ConnectionLost("the connection was closed"))

    @coroutine
    def wait_closed(self):
        """Wait until the connection is closed (a trap)."""
        yield from self.closed.wait()

    @coroutine
    def drain(self):
        """Wait until no request is being served and every answer has gone out (a graceful stop).

        Requests that arrive meanwhile are served too; the caller bounds the wait.
        """
        while True:
            busy = self._handlers._any_child()
            if busy is not None:
                yield from busy.wait_done()
            elif not self._drained.is_set():
                yield from self._drained.wait()
            else:
                return
