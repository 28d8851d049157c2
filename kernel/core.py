"""The scheduler core: the task table, one handler per trap, step and wake.

This is data plus trap handlers, with no loop of its own. A driver owns the
threads: ``kernel.runner`` gives each dispatcher real worker threads, the
``Stepper`` simulates them all in one thread. Both call ``step``, ``tick``
and the same handlers, so neither repeats any trap logic.
"""
import contextvars
import functools
import inspect
import itertools
import logging
import threading
import traceback
import weakref
from collections import deque
from types import FunctionType, GeneratorType

from .clock import MonotonicClock
from .dispatchers import Dispatcher, Dispatchers
from .errors import Cancelled, Timeout
from .instruments import guarded
from .poller import Poller
from .runqueue import RunQueue, UnconfinedPool
from .task import DONE, READY, RUNNING, WAITING, Task
from .timers import Timers
from .traps import CALL, CURRENT, IO, JOIN, PARK, PARKED, SLEEP, SPAWN, SWITCH, TRAP_CODES

log = logging.getLogger("genloop")

_in_context = contextvars.Context.run   # unbound: Context.run(ctx, fn, *args)
_SUSPEND = object()   # a handler's answer: the task is parked or re-queued
_HANDED = object()    # _watchers_op's answer: only Main may do that

#: The trap table, curio's style: trap code -> name of its ``Kernel`` method,
#: filled in by ``@_handles`` below; each kernel binds it once into a tuple
#: indexed by code (``Kernel._handlers``).
_HANDLERS = {}


def _handles(*codes):
    """Mark a ``Kernel`` method as the handler of the traps ``codes``."""
    def mark(method):
        for code in codes:
            if code in _HANDLERS:
                raise RuntimeError(f"trap code {code} has two handlers")
            _HANDLERS[code] = method.__name__
        return method
    return mark


class _Alarm:
    """A function as a timer's action, woken as a task would be: ``wake`` calls it.

    Due timers go to ``Kernel._wake_from_main`` in one list, tasks and
    functions alike, with no test of kind on the way: an alarm is on no run
    queue (``_pool``), so it takes the path that calls ``wake``.
    """

    __slots__ = ("fn",)
    _pool = None

    def __init__(self, fn):
        self.fn = fn

    def wake(self):
        self.fn()

    def __repr__(self):
        return getattr(self.fn, "__qualname__", repr(self.fn))


def _call(fn, args):
    """A plain call dressed as a coroutine, so it can be stepped on any pool."""
    return fn(*args)
    yield  # pragma: no cover - makes this a generator function


def _coroutine(fn, args):
    """``fn(*args)`` (or ``fn`` itself, a generator object) as something the kernel can step."""
    return _checked(fn if not args and hasattr(fn, "send") else fn(*args), fn)


def _checked(coro, fn):
    if hasattr(coro, "send") and hasattr(coro, "throw"):
        return coro
    raise TypeError(f"{fn!r} returned {coro!r}, not a generator or coroutine; "
                    "a plain function runs with with_context(dispatcher, fn)")


#: A timed-out call that took this much longer than its timeout (seconds) says so.
OVERRUN_REPORTED = 0.01


def _add_watcher(task, callback) -> bool:
    if task.done:
        return False
    if task._watchers is None:
        task._watchers = [callback]
    else:
        task._watchers.append(callback)
    return True


def _remove_watcher(task, callback) -> bool:
    try:
        task._watchers.remove(callback)
    except (AttributeError, ValueError):
        return False
    return True


def _timeout_message(name, seconds, took):
    """``Timeout``'s text; if the work ended well after the deadline, how long it really took."""
    text = f"{name} timed out after {seconds} s"
    if took > seconds + max(OVERRUN_REPORTED, seconds / 10):
        text += (f" and ended only {took:.3g} s after it started: cancelling waits for a blocking "
                 "call (with_context) to return, it cannot interrupt one")
    return text


def _name_of(fn):
    fn = fn.func if isinstance(fn, functools.partial) else fn    # called with keyword arguments
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


class Kernel:
    """One kernel per ``run``: its tasks, pools, timers and poller.

    Every attribute is set in ``__init__``, at most 30, and none through
    ``__dict__``: CPython 3.11+ then keeps them in the class's shared layout,
    so the hot paths' reads of the kernel stay slot reads, not dict lookups
    (``test_the_kernels_attributes_stay_in_its_class_layout``).
    """

    def __init__(self, *, clock=None, instruments=(), make_pool, make_limited, main_pool, thread_sizes=None):
        self.clock = clock or MonotonicClock()
        self.instruments = tuple(guarded(ins) for ins in instruments)
        if self.instruments:
            self.step = self._observed_step
        self.timers = Timers()
        self.poller = Poller()
        self.tls = threading.local()
        self.lock = threading.Lock()        # the pools, and the watchers of tasks off Main (see watch)
        self.tasks = {}
        self._ids = itertools.count(1)
        self._make_pool = make_pool
        self._make_limited = make_limited
        self.thread_sizes = thread_sizes or {}
        self.main_pool = main_pool(self)
        self.unconfined = UnconfinedPool(self.here)
        # Run queues by dispatcher. The standard ones are keys themselves;
        # any other (a Dispatcher or a limited view made inline per call) is
        # keyed by a weak reference, so its queue goes when it does
        # (``_prune``) and the table stays as small as the dispatchers in use.
        self.pools = {Dispatchers.Main: self.main_pool}
        self._dead = deque()                # weak keys whose dispatcher has gone
        self.retired = []                   # thread pools of gone dispatchers, still winding down
        self.stats = {"polls": 0, "slow_steps": 0}
        self.shutting_down = False
        self.interrupted = None             # a KeyboardInterrupt/SystemExit from a worker, for run()
        self.stopping = False               # the root has ended, or interrupted is set: Main stops
        self.turn_time = self.clock.now()   # the clock as Main's current turn began (its drivers set it)
        self.loop_frame = None              # the Main loop's frame while it turns (the watchdog reads it)
        self.monitor = None                 # the live console, when run() started one
        self.graceful_stop = None           # kernel.signals' state: the stop under way, its hooks
        self.signal_hub = None              # kernel.signals' handlers, when run() is on the main thread
        # The arm and abort of the waits whose trap does not carry them, by
        # trap code (see ``park``); bound once. I/O's are the poller's own.
        self._waits = tuple({SLEEP: (self._arm_sleep, self._abort_sleep),
                             IO: (self.poller.arm, self.poller.abort)}.get(code)
                            for code in range(len(TRAP_CODES)))
        self.poller.poke = self.main_pool.poke
        self._handlers = tuple(getattr(self, _HANDLERS[code]) for code in range(len(TRAP_CODES)))

    # -- pools ---------------------------------------------------------------
    def pool_for(self, dispatcher) -> RunQueue:
        """The run queue of ``dispatcher`` in this kernel, made on first use."""
        pool = self.pools.get(dispatcher)
        if pool is not None:
            return pool
        if dispatcher is Dispatchers.Unconfined:
            return self.unconfined
        if not isinstance(dispatcher, Dispatcher):
            raise TypeError(f"expected a Dispatcher, got {dispatcher!r}")
        pool = self.pools.get(weakref.ref(dispatcher))
        if pool is not None:
            return pool
        with self.lock:
            self._prune()
            return self._pool_locked(dispatcher)

    def _pool_locked(self, dispatcher):
        """``dispatcher``'s queue, made if need be (a view's parents first: views nest)."""
        standard = dispatcher is Dispatchers.Default or dispatcher is Dispatchers.IO
        key = dispatcher if standard else weakref.ref(dispatcher, self._dead.append)
        pool = self.pools.get(key)
        if pool is None:
            if dispatcher.kind == "limited":
                pool = self._make_limited(self._pool_locked(dispatcher.parent), dispatcher.threads, dispatcher.name)
            else:
                size = self.thread_sizes.get(dispatcher.name) or dispatcher.threads
                pool = self._make_pool(self, dispatcher.name, size, dispatcher.elastic)
            self.pools[key] = pool
        return pool

    def _prune(self):
        """Drop the queues of dispatchers that have gone (under ``self.lock``).

        A dispatcher outlives every task on it (``Task.dispatcher``), so its
        queue is empty by then; a thread pool is told to close and kept in
        ``retired`` until its threads are gone, for shutdown to join.
        """
        dead = self._dead
        while dead:
            pool = self.pools.pop(dead.popleft(), None)
            stop = getattr(pool, "stop", None)
            if stop is not None:
                stop()
                self.retired.append(pool)
        self.retired = [p for p in self.retired if p.threads]

    def at_turn_end(self, fn) -> bool:
        """Call ``fn()`` on this thread once its current turn of steps has ended; False if it runs none.

        A turn is one pass of Main over its run queue, or one batch of a
        worker: what the turn's steps queued can leave together (an rpc
        peer's writes, coalesced without waking a writer task). False on a
        thread the kernel does not own, or under the stepper: the caller then
        hands the work on another way.
        """
        after = getattr(self.tls, "after_turn", None)
        if after is None:
            return False
        after.append(fn)
        return True

    def here(self) -> RunQueue:
        """The pool of the calling thread (Main for threads the kernel does not own)."""
        return getattr(self.tls, "pool", None) or self.main_pool

    # -- tasks ---------------------------------------------------------------
    def new_task(self, fn, args, dispatcher, name, parent, group=None):
        """Create a task and queue it on ``dispatcher``: the kernel's own spawns (a root, a call's child).

        A task spawns through the SPAWN trap, whose handler does the work.
        """
        return self._trap_spawn(parent, (SPAWN, fn, args, dispatcher, name, group))

    def wake(self, task, value, exc):
        """Put a claimed, parked task back on its run queue with what it waited for."""
        task._value = value
        task._exc = exc
        task._abort = None
        if self.instruments:
            waker = getattr(self.tls, "task", None)   # None: the poller, a timer or a plain thread
            for ins in self.instruments:
                ins.task_woken(task, waker)
        task._pool.push(task)

    def step(self, task):
        """Run ``task`` until it parks, re-queues itself or ends.

        Returns True if it asks to be re-queued, else the trap it parked on
        (None: it ended); drivers test ``is True``. Traps that can be answered
        at once (spawn, current_task...) are answered inside this loop without
        a trip through the run queue; a handler answers ``_SUSPEND`` once the
        task is parked, after which this thread must not touch the task: a
        waker on another thread may already be stepping it. A checkpoint
        returns True and the driver puts the task back on its own queue: the
        driver knows which thread it is on, so that push needs no thread check
        and no lock. With instruments, ``self.step`` is ``_observed_step``,
        which wraps this one: the plain step reads no instrument.
        """
        value = task._value
        task._value = None
        exc = thrown = task._exc
        if exc is not None or task._cancel_pending:       # the rare cases, off the common path
            task._exc = None
            if task._cancel_pending and not task.steps:   # cancelled before it ever ran
                exc = self._take_cancel(task) or exc
        task.state = RUNNING
        task.steps += 1
        coro, context, send = task.coro, task.context, task._send
        try:
            while True:
                if exc is None:
                    trap = _in_context(context, send, coro, value)   # the task's own contextvars
                else:
                    trap = _in_context(context, type(coro).throw, coro, exc)
                    exc = None
                if trap is None:                      # bare yield: a checkpoint
                    if task._cancel_pending:
                        exc = self._take_cancel(task)
                        if exc is not None:
                            continue
                    return True
                try:
                    handler = self._handlers[trap[0]]
                except Exception:
                    exc = TypeError(f"task {task.name!r} yielded {trap!r}, which is not a kernel "
                                    "trap; call kernel functions with `yield from`")
                    continue
                try:
                    value = handler(task, trap)
                except BaseException as e:  # noqa: BLE001 - thrown into the task instead
                    exc = e
                    continue
                if value is _SUSPEND:
                    return trap
        except StopIteration as e:
            self._finish(task, e.value, None)
        except (KeyboardInterrupt, SystemExit) as e:
            self._finish(task, None, e)
            if e is not thrown:       # raised here, not handed on by a join:
                raise                 # Ctrl-C and exit() stop the kernel, not just this task
        except BaseException as e:  # noqa: BLE001 - the task's own exception, kept
            self._finish(task, None, e)
        return None

    def _observed_step(self, task):
        """``step``, with the instruments told before and after (bound as ``self.step`` when there are any)."""
        instruments = self.instruments
        self.tls.task = task     # the waker that task_woken reports
        for ins in instruments:
            ins.before_step(task)
        stopped = Kernel.step(self, task)
        self.tls.task = None
        for ins in instruments:
            ins.after_step(task, None if stopped is True else stopped)
        return stopped

    def interrupt(self, exc):
        """A ``KeyboardInterrupt``/``SystemExit`` raised off Main: make ``run`` stop with it."""
        if self.interrupted is None:
            self.interrupted = exc
        self.stop()

    def stop(self):
        """Make the Main loop stop turning (from any thread): the root ended, or an interrupt."""
        self.stopping = True
        self.main_pool.poke()

    def _take_cancel(self, task):
        """Consume a pending cancel; returns the ``Cancelled`` to throw, or None."""
        if task._pool is self.main_pool:     # Main's own: no other thread touches it (see Task)
            return self._took_cancel(task)
        task._lock.acquire()
        try:
            return self._took_cancel(task)
        finally:
            task._lock.release()

    @staticmethod
    def _took_cancel(task):
        if not task._cancel_pending:
            return None
        task._cancel_pending = False
        task._cancelled = True
        return Cancelled()

    @_handles(PARK, SLEEP, IO)
    def park(self, task, trap, arm=None, abort=None):
        """Suspend ``task`` in a wait structure; a pending cancel is delivered instead.

        ``arm(task)`` records the task (or returns a value to resume at once);
        ``abort(task)`` undoes it. See ``traps.park`` for the protocol. A task
        on Main parks without a lock: its wait state is Main's alone (see Task).

        This is also the handler of the three wait traps, the kernel's one
        kind of suspension (as trio has): a PARK trap, every primitive's
        wait, carries its own arm and abort; a sleep's and an I/O wait's are
        the kernel's, looked up by code (``_waits``). No call in between.
        """
        if arm is None:
            wait = self._waits[trap[0]]
            if wait is None:
                arm, abort = trap[1], trap[2]
            else:
                arm, abort = wait
        lock = None if task._pool is self.main_pool else task._lock
        if lock is not None:
            lock.acquire()
        try:
            if task._cancel_pending:
                task._cancel_pending = False
                task._cancelled = True
                raise Cancelled()
            task.state = WAITING
            task.trap = trap
            # The monitor's "waiting since": on Main the start of this turn
            # (one clock read per turn, not per park), elsewhere the clock.
            task.since = self.turn_time if lock is None else self.clock.now()
            task._abort = abort
            try:
                got = arm(task)
            except BaseException:
                task._abort = None
                task.state = RUNNING
                raise
            if got is PARKED:
                return _SUSPEND
            task._abort = None
            task.state = RUNNING
            return got
        finally:
            if lock is not None:
                lock.release()

    def _finish(self, task, result, exc):
        if exc is None and task._cancelled:
            exc = Cancelled()     # it caught Cancelled and returned: joiners still see it
        if task._owns is not None:
            for group in task._owns:
                exc = group._body_exit(task, exc)    # failures of a group it never joined
        # A task on Main ends on Main, its watchers are Main's: no lock (see watch).
        lock = None if task._pool is self.main_pool else self.lock
        if lock is not None:
            lock.acquire()
        task.result = result
        task.exception = exc
        task.state = DONE
        task.done = True
        watchers, task._watchers = task._watchers, None
        if lock is not None:
            lock.release()
        del self.tasks[task.id]        # in the table from its spawn until this, its one end
        if self.instruments:
            for ins in self.instruments:
                ins.task_exited(task)
        if watchers:
            for w in watchers:
                w(task)
        if self.shutting_down:
            self.main_pool.poke()      # shutdown waits on Main for the task table to empty
        if task._group is not None:
            task._group._child_done(task)
        elif exc is not None and not watchers and not isinstance(exc, (Cancelled, GeneratorExit,
                                                                          KeyboardInterrupt, SystemExit)):
            log.error("task #%d %r died and nobody joined it:\n%s", task.id, task.name,
                      "".join(traceback.format_exception(exc)))

    # A task's watchers belong to the thread that ends it. For a task on Main
    # that is Main, which touches them without a lock; another thread hands
    # its watch and unwatch to Main (call_soon). For a task on any other pool,
    # ``self.lock`` guards them. A task changes pools under ``self.lock``
    # (``_trap_switch``), so a locked look at ``_pool`` settles which rule holds.

    def _watchers_op(self, task, op, *args):
        """``op(task, *args)`` where the rule above allows it here; ``_HANDED`` if only Main may."""
        main = self.main_pool
        if task._pool is not main:
            self.lock.acquire()
            try:
                if task._pool is not main:
                    return op(task, *args)
            finally:
                self.lock.release()
        if main.on_own_thread():
            return op(task, *args)
        return _HANDED

    def watch(self, task, callback) -> bool:
        """Call ``callback(task)`` when ``task`` ends; False if it already has.

        From another thread, the watch of a task on Main is handed to Main:
        the answer is then True and Main calls back, at once if the task has
        ended meanwhile.
        """
        added = self._watchers_op(task, _add_watcher, callback)
        if added is _HANDED:
            self.main_pool.call_soon(lambda: self.watch(task, callback) or callback(task))
            return True
        return added

    def unwatch(self, task, callback, removed=None) -> bool:
        """Undo ``watch``; False if the callback has run or will run.

        From another thread, the unwatch of a task on Main is handed to Main
        and the answer is False; if Main does remove the callback, it calls
        ``removed()``.
        """
        done = self._watchers_op(task, _remove_watcher, callback)
        if done is _HANDED:
            self.main_pool.call_soon(lambda: self.unwatch(task, callback, removed) and removed is not None and removed())
            return False
        return done

    # -- trap handlers (one per code; the table is ``_handlers``) ------------
    @_handles(SPAWN)
    def _trap_spawn(self, parent, trap):
        """Create the task, queue it on its dispatcher (the parent's if None) and answer it."""
        _, fn, args, dispatcher, name, group = trap
        if type(fn) is FunctionType:
            coro = fn(*args)
            if type(coro) is not GeneratorType:
                coro = _checked(coro, fn)
        else:
            coro = _coroutine(fn, args)
        if dispatcher is None:        # the parent's: its run queue is at hand
            dispatcher, pool = parent.dispatcher, parent._pool
        else:
            pool = self.pools.get(dispatcher) or self.pool_for(dispatcher)
        task = Task(self, coro, name, dispatcher, pool, parent, group)
        self.tasks[task.id] = task     # one dict insert, atomic: no lock (see Task.__init__)
        if group is not None:
            group._adopt(task)
        if self.instruments:
            for ins in self.instruments:
                ins.task_spawned(task)
            pool.push(task)
        elif pool is self.main_pool and parent is not None and parent._pool is pool:
            task.state = READY         # MainPool.push on Main, inlined: a task on Main spawns
            pool.queue.append(task)    # from its step, on Main, with no thread check
        else:
            pool.push(task)
        return task

    @_handles(CURRENT)
    def _trap_current(self, task, trap):
        return task

    @_handles(JOIN)
    def _trap_join(self, task, trap):
        target, quiet = trap[1], trap[2]
        if target.done:
            return self._outcome(target, quiet)
        if target is task:
            raise RuntimeError(f"task #{task.id} {task.name!r} cannot join itself: it would wait for ever")

        def arm(me):
            return PARKED if self.watch(target, waker) else self._outcome(target, quiet)

        def waker(done):
            try:
                task.wake(self._outcome(done, quiet))
            except BaseException as e:  # noqa: BLE001 - the joined task's exception
                task.wake_exc(e)

        return self.park(task, trap, arm, lambda me: self.unwatch(target, waker, lambda: self._cancel_parked(me)))

    @staticmethod
    def _outcome(target, quiet):
        if quiet or target.exception is None:
            return None if quiet else target.result
        raise target.exception

    # Sleeps and I/O waits are the hot waits: their arm/abort are bound once
    # (in __init__) and read what they need from ``task.trap``, so a wait
    # allocates no closures. ``task._waiting`` holds the timer entry.
    def _arm_sleep(self, task):
        deadline = self.clock.now() + task.trap[1]    # from now, not from the turn's start
        if task._pool is self.main_pool:       # on Main: the timers are ours
            task._waiting = self.timers.add(deadline, task)
        else:
            task._waiting = self.add_timer(deadline, task)
        return PARKED

    def _abort_sleep(self, task):
        return self.remove_timer(task._waiting, task)

    # The timers are Main's (see ``Timers``): another thread hands its add and
    # remove to Main, the way it hands over a task on Main (call_soon).
    def add_timer(self, deadline, action) -> tuple:
        """Schedule ``action`` (a task to wake, or a function) at ``deadline``, from any thread."""
        timers, main = self.timers, self.main_pool
        if not isinstance(action, Task):
            action = _Alarm(action)
        if main.on_own_thread():
            return timers.add(deadline, action)
        entry = timers.entry(deadline, action)
        main.call_soon(lambda: self._insert_handed(entry))     # also wakes Main, asleep with a later deadline
        return entry

    def _insert_handed(self, entry):
        """Insert a timer another thread handed over, unless its sleeper was cancelled meanwhile.

        A cancel that ran on Main before this insertion found no entry to
        remove: it left the cancel pending, and it is delivered here.
        """
        sleeper = entry[2]
        if not (isinstance(sleeper, Task) and self._cancel_parked(sleeper)):
            self.timers.insert(entry)

    def remove_timer(self, entry, sleeper=None) -> bool:
        """Unschedule ``entry``; False if it fired, or if the removal was handed to Main.

        Handed over, a removal that takes effect delivers the pending cancel
        of ``sleeper`` (a parked task whose abort this is).
        """
        main = self.main_pool
        if main.on_own_thread():
            return self.timers.remove(entry)
        main.call_soon(lambda: self.timers.remove(entry) and sleeper is not None and self._cancel_parked(sleeper))
        return False

    def _cancel_parked(self, task) -> bool:
        """Deliver the cancel a parked task is owed, whose abort was handed to Main; False if none is."""
        exc = self._take_cancel(task)
        if exc is None:
            return False
        task.wake_exc(exc)
        return True

    @_handles(SWITCH)
    def _trap_switch(self, task, trap):
        dispatcher = trap[1]
        pool = self.pool_for(dispatcher)
        # Both locks order the move against another thread's cancel (the
        # task's wait state) and watch (its watchers): see Task and watch.
        with task.own_lock(), self.lock:
            cancelled = self._took_cancel(task)
            if cancelled is None:        # a cancelled task stays where it is: the move did not happen
                task._pool = pool
                task.dispatcher = dispatcher
        if cancelled is not None:
            raise cancelled
        pool.push(task)
        return _SUSPEND

    @_handles(CALL)
    def _trap_call(self, task, trap):
        """with_context and timeout_after: run the work as a child and wait for it.

        Cancelling the caller cancels the child and keeps the caller parked
        until the child has ended, so no work outlives the call.
        """
        _, dispatcher, fn, args, seconds = trap
        if dispatcher is None:
            dispatcher = task.dispatcher
        if inspect.isgeneratorfunction(fn) or inspect.iscoroutinefunction(fn) or hasattr(fn, "send"):
            child = self.new_task(fn, args, dispatcher, None, task)
        else:
            child = self.new_task(_call, (fn, args), dispatcher, _name_of(fn), task)
        timer = None
        expired = False
        started = 0.0

        def on_timeout(_task=None):
            nonlocal expired
            expired = True
            child.cancel()

        def outcome(done):
            if timer is not None:
                self.remove_timer(timer)
            exc = done.exception
            # The one read of a parked caller's wait state off its own thread
            # (the child's end may run anywhere). It is safe without the
            # caller's lock: while the caller is parked here, only a cancel
            # sets _cancel_pending and only this waker clears it; a cancel
            # that lands after this read stays pending and is delivered at the
            # caller's next suspension, as a cancel after any wake-up is.
            if task._cancel_pending:      # the caller was cancelled: that wins
                exc = self._take_cancel(task) or exc
            elif expired and isinstance(exc, Cancelled):
                exc = Timeout(_timeout_message(_name_of(fn), seconds, self.clock.now() - started))
            if exc is not None:
                raise exc
            return done.result

        def waker(done):
            try:
                task.wake(outcome(done))
            except BaseException as e:  # noqa: BLE001 - the child's outcome, delivered
                task.wake_exc(e)

        def arm(me):
            nonlocal timer, started
            if seconds is not None:
                started = self.clock.now()
                timer = self.add_timer(started + seconds, on_timeout)
            return PARKED if self.watch(child, waker) else outcome(child)

        def abort(me):
            child.cancel()
            return False      # stay parked: the child's end wakes us

        return self.park(task, trap, arm, abort)

    # -- timers and I/O (called by the driver on the Main thread) ------------
    def next_timeout(self):
        """Seconds until the first timer (0 if due, None if there is none)."""
        earliest = self.timers.earliest()
        if earliest is None:
            return None
        return max(0.0, earliest - self.clock.now())

    def tick(self, timeout, poll=True):
        """Poll I/O for up to ``timeout`` seconds (None: until woken), then fire due timers.

        ``poll=False`` skips the system call when nothing waits on I/O.
        """
        if poll:
            instruments = self.instruments
            for ins in instruments:
                ins.before_poll(timeout)
            woken = self.poller.poll(timeout)
            self.stats["polls"] += 1
            for ins in instruments:
                ins.after_poll(len(woken))
            if woken:
                self._wake_from_main(woken)
        if self.timers.count:
            due = self.timers.pop_due(self.clock.now())
            if due:
                self._wake_from_main(due)

    def _wake_from_main(self, tasks):
        """``wake`` by Main itself (its poller, its timers): a task of Main's goes straight on its queue.

        One hop, with no thread check and no call per task: the driver calls
        ``tick`` on Main. These tasks resume with nothing (``_value`` and
        ``_exc`` are None while a task is parked). Any other (on another
        pool, or with instruments, the stepper's among them) is woken by its
        ``wake``, which is also how a timer's function (an ``_Alarm``) runs.
        """
        main = self.main_pool
        queue = main.queue
        plain = not self.instruments
        for task in tasks:
            if plain and task._pool is main:
                task._abort = None
                task.state = READY
                queue.append(task)
            else:
                task.wake()

    def forget_fd(self, f):
        """Tell the poller ``f`` is about to close; its waiters get ``ClosedResourceError``."""
        for t, err in self.poller.forget(f):
            self.wake(t, None, err)

    def workers_idle(self) -> bool:
        """No task queued or running on any pool but Main's (for the virtual clock).

        Pools are checked one by one, so a worker could push into a pool
        already checked and then go idle; every push bumps its pool's
        ``pushes`` counter, and reading them all before and after catches that.
        """
        pools = [p for p in list(self.pools.values()) if p is not self.main_pool]
        before = [p.pushes for p in pools]
        if not all(p.idle() for p in pools):
            return False
        # A pool created meanwhile (a worker spawning onto a new dispatcher) was not checked.
        return (len(self.pools) == len(pools) + 1 and [p.pushes for p in pools] == before
                and self.main_pool.idle())
