"""The Stepper: the same scheduler core, driven one step at a time in one thread.

Every worker of every dispatcher is simulated: each dispatcher gets a run
queue and named workers ("Main", "Default-1", "Default-2", "IO-1", ...), and
the stepper lets them take turns in a fixed rotation. Time is virtual by
default (a ``simtime.SimClock``), so a script gives the same events every
run, and a blocking ``time.sleep`` in a step is simulated: it keeps only
its own worker busy for that long (``kernel.simtime``). Real sockets still
work (the poller is real). Trap handling is the core's own
(``Kernel.step``); only the choice of who runs next lives here.
"""
import sys
import threading
from collections import deque
from dataclasses import dataclass, field

from .core import Kernel
from .current import set_current_kernel
from .dispatchers import Dispatchers
from .instruments import Instrument
from .introspect import describe, where
from .runqueue import LimitedPool
from .simtime import SimClock, blocking_simulated
from .task import READY
from .traps import IO, READ

#: Simulated worker threads per dispatcher, unless ``threads=`` says otherwise.
DEFAULT_SIM_THREADS = {"Default": 2, "IO": 2}
#: Lines of ``lines_of`` recorded per step at most (a hot loop stops being recorded there).
MAX_LINES = 200


class SimPool:
    """A run queue and its simulated workers: FIFO, no threads (a ``runqueue.RunQueue``)."""

    limited = False
    pushes = 0        # one thread: nothing can push while the kernel looks

    def __init__(self, kernel, name, size, elastic=False, stepper=None):
        self.name = name
        self.queue = deque()
        self.workers = [name] if name == "Main" else [f"{name}-{i + 1}" for i in range(size)]
        self.stepper = stepper

    def push(self, task):
        task.state = READY
        if self.stepper is not None and self.stepper.hold(self, task):
            return                    # woken after a simulated blocking call: it arrives later
        self.queue.append(task)

    def poke(self):
        """Nothing sleeps in a simulation."""

    def on_own_thread(self) -> bool:
        """One thread steps every simulated worker: the caller is always "Main"."""
        return True

    def idle(self):
        return not self.queue

    def snapshot(self):
        return list(self.queue)


class _Recorder(Instrument):
    """What happened inside the latest step, and the wake-ups between steps.

    A step can spawn, wake and run several lines before its last trap; the
    stepper shows them all (``StepEvent.ops``). Wake-ups with no waking task
    come from the poller or a timer (``StepEvent.before``).
    """

    def __init__(self):
        self.last = None
        self.ops = []            # this step's ("line", lineno), ("spawn", task), ("wake", task), ("block", seconds)
        self.woken = []          # tasks woken outside any step (poller, timers)

    def after_step(self, task, trap):
        self.last = trap

    def task_spawned(self, task):
        if task.parent is not None:
            self.ops.append(("spawn", task))

    def task_woken(self, task, waker):
        if waker is not None:
            self.ops.append(("wake", task))
        else:
            self.woken.append(task)


def _fd(f) -> int:
    return f if isinstance(f, int) else f.fileno()


def _ready(tasks) -> str:
    """What the poller found, by direction: ``fds 9, 11 readable, fd 7 writable``."""
    out = []
    for mode, word in ((READ, "readable"), (1 - READ, "writable")):
        fds = [str(_fd(t.trap[1])) for t in tasks if t.trap[2] == mode]
        if fds:
            out.append(f"{'fds' if len(fds) > 1 else 'fd'} {', '.join(fds)} {word}")
    return ", ".join(out)


def _who(task) -> str:
    return f"#{task.id} {task.name}"


@dataclass
class KernelEvent:
    """A turn of the kernel itself between two steps: the poller's, a timer's, the end of a blocking call."""

    kind: str                   # "poll", "timer" or "block"
    time: float
    text: str                   # "poll -> fd 9 readable, fd 11 readable -> wakes #4 tcp:1, #5 client-b"
    woken: list = field(default_factory=list)    # the woken tasks' ids

    def __str__(self):
        return f"{self.kind:<5} t={self.time:.3f}  {self.text}"


@dataclass
class StepEvent:
    """What one step did, and the kernel's state after it."""

    number: int
    time: float
    worker: str
    task_id: int
    task_name: str
    action: str                 # what the task asked for, in words
    line: tuple | None          # (file, lineno, function, source) where it now waits
    done: bool = False
    queues: dict = field(default_factory=dict)   # pool name -> [task names]; "X.limited(n) waiting": over the cap
    timers: list = field(default_factory=list)   # [(deadline, task name or action)]
    io: list = field(default_factory=list)       # [(fd, "read"/"write", task name)]
    ops: list = field(default_factory=list)      # [lineno, times run, [effects]]: lines of ``lines_of``
    before: list = field(default_factory=list)   # KernelEvents since the previous step

    def __str__(self):
        where = f"  at {self.line[0]}:{self.line[1]}" if self.line else ""
        return (f"#{self.number:<4} t={self.time:8.3f}  {self.worker:<10} task #{self.task_id} "
                f"{self.task_name}: {self.action}{where}")


class Stepper:
    """Drive ``main(*args)`` deterministically: ``step()`` returns one ``StepEvent``.

    ``threads`` maps dispatcher names to simulated worker counts. ``step()``
    returns None once the main task has ended; ``result`` then holds its value
    (or ``exception`` its error). Use ``close()`` (or ``with``) to cancel what
    is left and release the poller. ``lines_of``: the file whose lines each
    step records in ``StepEvent.ops`` (default: ``main``'s own; False: none).
    """

    def __init__(self, main, *args, clock=None, threads=None, instruments=(), lines_of=None):
        sizes = {**DEFAULT_SIM_THREADS, **(threads or {})}
        self._recorder = _Recorder()
        if lines_of is None:             # the source file whose lines a step runs are recorded as ops
            lines_of = getattr(getattr(main, "__code__", None), "co_filename", None)
        self._lines_of = lines_of or None
        self._pending = []               # KernelEvents not yet handed out with a step
        self.kernel = Kernel(clock=clock or SimClock(), instruments=(self._recorder, *instruments),
                             thread_sizes=sizes,
                             make_pool=lambda k, name, size, elastic: SimPool(k, name, size, elastic, self),
                             make_limited=LimitedPool,
                             main_pool=lambda k: SimPool(k, "Main", 1, stepper=self))
        self.clock = self.kernel.clock
        self._simulated = isinstance(self.clock, SimClock)     # blocking time simulated (kernel.simtime)
        if self._simulated:
            self.clock.on_sleep = lambda seconds: self._recorder.ops.append(("block", seconds))
        self._stepping = None            # the worker whose step runs now
        self._busy = {}                  # worker -> virtual time its simulated blocking call ends
        self._held = []                  # (time, order, worker, pool, task): pushes a blocking call delays
        self.number = 0
        self._turn = 0
        self.main = self.kernel.new_task(main, args, Dispatchers.Main, None, None)
        self.kernel.watch(self.main, lambda t: None)
        self.events = []

    # -- who runs next -------------------------------------------------------
    def _workers(self):
        """(worker name, pool) in the fixed rotation order."""
        out = []
        for pool in self._pools():
            out.extend((w, pool) for w in pool.workers)
        return out

    def _pools(self):
        return [p for p in self.kernel.pools.values() if not p.limited]

    def _next(self):
        workers = self._workers()
        n = len(workers)
        now = self.clock.now()
        for i in range(n):
            name, pool = workers[(self._turn + i) % n]
            if pool.queue and self._busy.get(name, now) <= now:
                self._turn = (self._turn + i + 1) % n
                return name, pool
        return None, None

    # -- simulated blocking (kernel.simtime) --------------------------------
    def hold(self, pool, task) -> bool:
        """Delay a push made after the running step has blocked for a while; True if held."""
        if self._stepping is None or not self.clock.elapsed:
            return False
        self._held.append((self.clock.now(), len(self._held), self._stepping, pool, task))
        return True

    def _release_due(self):
        """Push the held tasks whose time has come; end the blocking calls that are over."""
        now = self.clock.now()
        due = sorted((h for h in self._held if h[0] <= now), key=lambda h: h[:2])
        self._held = [h for h in self._held if h[0] > now]
        for _, _, _, pool, task in due:
            pool.queue.append(task)
        ended = sorted({h[2] for h in due} | {w for w, end in self._busy.items() if end <= now})
        for worker in ended:
            self._busy.pop(worker, None)
        if ended:
            woken = f" -> wakes {', '.join(_who(h[4]) for h in due)}" if due else ""
            self._pending.append(KernelEvent("block", now, f"{', '.join(ended)}: the blocking call ends{woken}",
                                             [h[4].id for h in due]))

    def _next_internal(self):
        """The virtual time of the next held push or end of a blocking call, or None."""
        times = [h[0] for h in self._held] + list(self._busy.values())
        return min(times) if times else None

    def _wait_for_work(self):
        """Nothing runnable: poll real I/O, or jump the clock to the next timer (or end of a blocking call)."""
        kernel = self.kernel
        self._release_due()
        if self._next()[1] is not None:
            return
        timeout = kernel.next_timeout()
        internal = self._next_internal()
        if internal is not None:
            wait = max(0.0, internal - self.clock.now())
            timeout = wait if timeout is None else min(timeout, wait)
        if kernel.poller.waiting:
            kernel.tick(timeout)      # real sockets: wait for them for real
            self._note_turn(timeout)
            if timeout is None or any(p.queue for p in self._pools()):
                return
        elif timeout is None:
            raise RuntimeError("deadlock: every task waits and nothing (timer, I/O) can wake them")
        before = self.clock.now()
        if self.clock.virtual:
            self.clock.advance_to(before + timeout)
        self._release_due()
        kernel.tick(0, poll=False)
        self._note_turn(None, jumped=before)

    def _note_turn(self, timeout, jumped=None):
        """Turn the tasks the kernel just woke (poller, timers) into KernelEvents."""
        woken, self._recorder.woken = self._recorder.woken, []
        now = self.clock.now()
        polled = [t for t in woken if t.trap is not None and t.trap[0] == IO]
        fired = [t for t in woken if t not in polled]
        if jumped is None and (polled or timeout != 0):     # the poller's turn (a zero-timeout miss is no turn)
            waited = "until woken" if timeout is None else f"up to {timeout:.3f} s"
            text = (f"poll ({waited}) -> {_ready(polled)} -> wakes {', '.join(map(_who, polled))}" if polled
                    else f"poll ({waited}) -> nothing ready")
            self._pending.append(KernelEvent("poll", now, text, [t.id for t in polled]))
        if fired or (jumped is not None and not self._pending):
            clock = f"clock {jumped:.3f} -> {now:.3f}, " if jumped is not None and now != jumped else ""
            text = clock + (f"timer fires -> wakes {', '.join(map(_who, fired))}" if fired else "no timer due")
            self._pending.append(KernelEvent("timer", now, text, [t.id for t in fired]))

    # -- stepping ------------------------------------------------------------
    def step(self):
        """Run one task for one step; None once main has ended."""
        if self.main.done:
            return None
        name, pool = self._next()
        while pool is None:
            self._wait_for_work()
            name, pool = self._next()
        self._recorder.ops = ops = []
        tracing = self._lines_of is not None and sys.gettrace() is None
        if tracing:
            sys.settrace(self._line_tracer(ops))
        try:
            task = self._run_blocking(pool, name)
        finally:
            if tracing:
                sys.settrace(None)
        self.number += 1
        event = self._event(name, task, pool)
        event.before, self._pending = self._pending, []
        self.events.append(event)
        return event

    def _line_tracer(self, ops):
        """A ``sys.settrace`` function recording the lines run in ``lines_of`` as ops."""
        path = self._lines_of

        def local(frame, event, arg):
            if event != "line":
                return local
            if len(ops) < MAX_LINES:
                ops.append(("line", frame.f_lineno))
                return local
            if ops[-1] != ("line", None):
                ops.append(("line", None))      # the mark: the rest went unrecorded
            return None

        return lambda frame, event, arg: local if frame.f_code.co_filename == path and len(ops) < MAX_LINES else None

    @staticmethod
    def _ops(ops, pool):
        """The recorded ops as ``[lineno, times, [effects in words]]``, a run of one line counted once.

        ``lineno`` is None for effects before the first recorded line, and
        for the mark that recording stopped (``MAX_LINES``).
        """
        out = []
        for kind, what in ops:
            if kind == "line":
                if out and out[-1][0] == what and what is not None and not out[-1][2]:
                    out[-1][1] += 1
                else:
                    out.append([what, 1, []])
                continue
            if not out:
                out.append([None, 0, []])
            if kind == "block":
                out[-1][2].append(f"blocks this worker {what:g} s (time.sleep, simulated)")
                continue
            elsewhere = what._pool is not None and what._pool is not pool
            out[-1][2].append(f"{kind}s {_who(what)}" + (f" on {what._pool.name}" if elsewhere else ""))
        return out

    def _event(self, worker, task, pool):
        kernel = self.kernel
        if task.done:
            action = (f"raised {task.exception!r}" if task.exception is not None
                      else f"returned {task.result!r}")
        else:
            action = describe(self._recorder.last)
        return StepEvent(
            number=self.number, time=self.clock.now(), worker=worker, task_id=task.id,
            task_name=task.name, action=action, line=None if task.done else where(task), done=task.done,
            queues={**{p.name: [_who(t) for t in p.snapshot()] for p in self._pools()},
                    **{f"{p.name} waiting": [_who(t) for t in p.pending]
                       for p in kernel.pools.values() if p is not None and p.limited}},
            timers=[(d, f"#{a.id} {a.name}" if hasattr(a, "id") else getattr(a, "__qualname__", repr(a)))
                    for d, a in kernel.timers.snapshot()],
            io=[(fd, "read" if mode == 0 else "write", f"#{t.id} {t.name}")
                for fd, mode, t in kernel.poller.snapshot()],
            ops=self._ops(self._recorder.ops, pool),
        )

    def __iter__(self):
        while (event := self.step()) is not None:
            yield event

    def run(self):
        """Step to the end; returns main's value or raises its exception."""
        for _ in self:
            pass
        return self.result

    @property
    def result(self):
        if not self.main.done:
            raise RuntimeError("main has not finished")
        if self.main.exception is not None:
            raise self.main.exception
        return self.main.result

    @property
    def workers(self) -> list:
        """The simulated workers' names in rotation order ("Main", "Default-1", ...)."""
        return [name for name, _ in self._workers()]

    @property
    def tasks(self):
        """Live tasks by id."""
        return dict(self.kernel.tasks)

    def _run_blocking(self, pool, worker):
        """``_run_one``, its blocking time simulated: the worker stays busy that long after it."""
        if not self._simulated:
            return self._run_one(pool, worker)
        start = self.clock.now()
        self._stepping = worker
        try:
            with blocking_simulated(self.clock) as clock:
                task = self._run_one(pool, worker)
                blocked = clock.elapsed
        finally:
            self._stepping = None
        if blocked:
            self._busy[worker] = start + blocked
        return task

    def _run_one(self, pool, worker="Main"):
        """Step the next task of ``pool`` as if on ``worker``; return it.

        The thread wears the worker's name meanwhile ("genloop-IO-1", as a
        real worker thread is named), so code that asks which thread it is on
        gets the answer ``run()`` would give.
        """
        task = pool.queue.popleft()
        home = task._pool
        kernel = self.kernel
        kernel.tls.pool = pool
        set_current_kernel(kernel)
        thread = threading.current_thread()
        own_name = thread.name
        if worker != "Main":
            thread.name = f"genloop-{worker}"
        kernel.turn_time = kernel.clock.now()    # a step is a turn here
        try:
            if kernel.step(task) is True:       # a checkpoint
                home.push(task)
        finally:
            thread.name = own_name
            set_current_kernel(None)
            kernel.tls.pool = kernel.main_pool    # the poller and timers run on Main, as in run()
        if home.limited:
            home.release()
        return task

    def runnable(self) -> bool:
        """Some task is queued on a simulated worker that is free now."""
        now = self.clock.now()
        return any(p.queue and any(self._busy.get(w, now) <= now for w in p.workers) for p in self._pools())

    def due_by(self, when) -> bool:
        """Would the next step come before the clock passes ``when``? (I/O is looked at, not waited for.)"""
        if self.runnable():
            return True
        if self.kernel.poller.waiting:
            self.kernel.tick(0)
            self._note_turn(0)
            if self.runnable():
                return True
        timeout = self.kernel.next_timeout()
        internal = self._next_internal()
        soonest = min(t for t in (None if timeout is None else self.clock.now() + timeout, internal) if t is not None) \
            if timeout is not None or internal is not None else None
        return soonest is not None and soonest <= when

    def advance_clock(self, when):
        """Move virtual time on to ``when`` (kotlinx-coroutines-test's ``advanceTimeBy``, after ``due_by``)."""
        if self.clock.virtual:
            self.clock.advance_to(when)

    def close(self):
        """Cancel what is still alive, step until it has ended, release the poller."""
        for t in list(self.kernel.tasks.values()):
            t.cancel()
        guard = 0
        while self.kernel.tasks and guard < 100_000:
            name, pool = self._next()
            if pool is None:
                try:
                    self._wait_for_work()
                except RuntimeError:
                    break
                guard += 1
                continue
            self._run_blocking(pool, name)
            guard += 1
        self.kernel.poller.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
