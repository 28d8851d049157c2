"""The Stepper: the same scheduler core, driven one step at a time in one thread.

Every worker of every dispatcher is simulated: each dispatcher gets a run
queue and named workers ("Main", "Default-1", "Default-2", "IO-1", ...), and
the stepper lets them take turns in a fixed rotation. Time is a
``VirtualClock`` by default, so a script gives the same events every run;
real sockets still work (the poller is real). Trap handling is the core's
own (``Kernel.step``); only the choice of who runs next lives here.
"""
from collections import deque
from dataclasses import dataclass, field

from .clock import VirtualClock
from .core import Kernel
from .current import set_current_kernel
from .dispatchers import Dispatchers
from .instruments import Instrument
from .introspect import describe, where
from .runqueue import LimitedPool
from .task import READY

#: Simulated worker threads per dispatcher, unless ``threads=`` says otherwise.
DEFAULT_SIM_THREADS = {"Default": 2, "IO": 2}


class SimPool:
    """A run queue and its simulated workers: FIFO, no threads (a ``runqueue.RunQueue``)."""

    limited = False
    pushes = 0        # one thread: nothing can push while the kernel looks

    def __init__(self, kernel, name, size, elastic=False):
        self.name = name
        self.queue = deque()
        self.workers = [name] if name == "Main" else [f"{name}-{i + 1}" for i in range(size)]

    def push(self, task):
        task.state = READY
        self.queue.append(task)

    def poke(self):
        """Nothing sleeps in a simulation."""

    def idle(self):
        return not self.queue

    def snapshot(self):
        return list(self.queue)


class _LastTrap(Instrument):
    """Remembers the trap that ended the latest step."""

    last = None

    def after_step(self, task, trap):
        self.last = trap


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
    queues: dict = field(default_factory=dict)   # worker pool name -> [task names]
    timers: list = field(default_factory=list)   # [(deadline, task name or action)]
    io: list = field(default_factory=list)       # [(fd, "read"/"write", task name)]

    def __str__(self):
        where = f"  at {self.line[0]}:{self.line[1]}" if self.line else ""
        return (f"#{self.number:<4} t={self.time:8.3f}  {self.worker:<10} task #{self.task_id} "
                f"{self.task_name}: {self.action}{where}")


class Stepper:
    """Drive ``main(*args)`` deterministically: ``step()`` returns one ``StepEvent``.

    ``threads`` maps dispatcher names to simulated worker counts. ``step()``
    returns None once the main task has ended; ``result`` then holds its value
    (or ``exception`` its error). Use ``close()`` (or ``with``) to cancel what
    is left and release the poller.
    """

    def __init__(self, main, *args, clock=None, threads=None, instruments=()):
        sizes = {**DEFAULT_SIM_THREADS, **(threads or {})}
        self._trap = _LastTrap()
        self.kernel = Kernel(clock=clock or VirtualClock(), instruments=(self._trap, *instruments),
                             thread_sizes=sizes,
                             make_pool=SimPool, make_limited=LimitedPool,
                             main_pool=lambda k: SimPool(k, "Main", 1))
        self.clock = self.kernel.clock
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
        for i in range(n):
            name, pool = workers[(self._turn + i) % n]
            if pool.queue:
                self._turn = (self._turn + i + 1) % n
                return name, pool
        return None, None

    def _wait_for_work(self):
        """Nothing runnable: poll real I/O, or jump the clock to the next timer."""
        kernel = self.kernel
        timeout = kernel.next_timeout()
        if kernel.poller.waiting:
            kernel.tick(timeout)      # real sockets: wait for them for real
            if timeout is None or any(p.queue for p in self._pools()):
                return
        elif timeout is None:
            raise RuntimeError("deadlock: every task waits and nothing (timer, I/O) can wake them")
        if self.clock.virtual:
            self.clock.advance_to(self.clock.now() + timeout)
        kernel.tick(0, poll=False)

    # -- stepping ------------------------------------------------------------
    def step(self):
        """Run one task for one step; None once main has ended."""
        if self.main.done:
            return None
        name, pool = self._next()
        while pool is None:
            self._wait_for_work()
            name, pool = self._next()
        task = self._run_one(pool)
        self.number += 1
        event = self._event(name, task)
        self.events.append(event)
        return event

    def _event(self, worker, task):
        kernel = self.kernel
        if task.done:
            action = (f"raised {task.exception!r}" if task.exception is not None
                      else f"returned {task.result!r}")
        else:
            action = describe(self._trap.last)
        return StepEvent(
            number=self.number, time=self.clock.now(), worker=worker, task_id=task.id,
            task_name=task.name, action=action, line=None if task.done else where(task), done=task.done,
            queues={p.name: [f"#{t.id} {t.name}" for t in p.snapshot()] for p in self._pools()},
            timers=[(d, f"#{a.id} {a.name}" if hasattr(a, "id") else getattr(a, "__qualname__", repr(a)))
                    for d, a in kernel.timers.snapshot()],
            io=[(fd, "read" if mode == 0 else "write", f"#{t.id} {t.name}")
                for fd, mode, t in kernel.poller.snapshot()],
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

    def _run_one(self, pool):
        """Step the next task of ``pool`` as if on one of its workers; return it."""
        task = pool.queue.popleft()
        home = task._pool
        kernel = self.kernel
        kernel.tls.pool = pool
        set_current_kernel(kernel)
        try:
            kernel.step(task)
        finally:
            set_current_kernel(None)
        if home.limited:
            home.release()
        return task

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
            self._run_one(pool)
            guard += 1
        self.kernel.poller.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
