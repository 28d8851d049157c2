"""Run queues with real threads behind them: the threaded driver's half.

The scheduler core only ever calls ``pool.push(task)``; these classes decide
which thread steps it. The stepper (``kernel.stepper``) has its own simulated
pools with the same ``push``/``idle`` face.
"""
import threading
from collections import deque

from .core import _local

#: Tasks a worker takes from the shared queue per lock acquisition. Tasks it
#: re-queues meanwhile wait in a private list until the batch ends, so a busy
#: worker takes the shared lock twice per batch, not twice per step: under the
#: GIL, a lock handed between threads on two cores per step costs ~3x the step.
BATCH = 32
#: Kotlin keeps idle IO threads for 60 s; a shorter life suits a library that
#: also runs inside test suites, and re-creating a thread costs ~50 µs.
IO_KEEPALIVE = 10.0


class MainPool:
    """The run queue of the thread that called ``run``.

    The Main thread appends to ``queue`` without a lock (it is the only thread
    that touches it); other threads go through ``inbox`` under ``lock`` and
    wake the poller if Main is asleep in it.
    """

    kind = "main"
    limited = False

    def __init__(self, poller, ident):
        self.queue = deque()
        self.inbox = deque()
        self.lock = threading.Lock()
        self.sleeping = False
        self.poller = poller
        self.ident = ident
        self.name = "Main"
        self.workers = ("Main",)
        self.pushes = 0

    def push(self, task, get_ident=threading.get_ident):
        task.state = "ready"
        if get_ident() == self.ident:
            self.queue.append(task)
        else:
            with self.lock:
                self.pushes += 1
                self.inbox.append(task)
                if self.sleeping:
                    self.sleeping = False
                    self.poller.wake_main()

    def poke(self):
        """Make Main look again at timers and pools (from any thread)."""
        with self.lock:
            if self.sleeping:
                self.sleeping = False
                self.poller.wake_main()

    def drain_inbox(self):
        with self.lock:
            self.queue.extend(self.inbox)
            self.inbox.clear()

    def try_sleep(self) -> bool:
        """Announce that Main is about to block; False if work arrived meanwhile."""
        with self.lock:
            if self.inbox:
                self.queue.extend(self.inbox)
                self.inbox.clear()
                return False
            self.sleeping = True
            return True

    def woke(self):
        with self.lock:
            self.sleeping = False

    def idle(self) -> bool:
        return not self.queue and not self.inbox

    def snapshot(self):
        with self.lock:
            return list(self.queue) + list(self.inbox)


class ThreadPool:
    """A shared run queue and the worker threads that drain it.

    Threads start on demand, up to ``size``; an elastic pool lets idle threads
    retire after ``IO_KEEPALIVE`` seconds.
    """

    kind = "pool"
    limited = False

    def __init__(self, kernel, name, size, elastic):
        self.kernel = kernel
        self.name = name
        self.size = size
        self.elastic = elastic
        self.queue = deque()
        self.cond = threading.Condition(threading.Lock())
        self.threads = []
        self.idle_count = 0
        self.closing = False
        self.serial = 0
        self.workers = []
        self.pushes = 0
        # .current: the task this worker is stepping; .out: where that task's
        # own re-queue waits until the batch ends (other pushes go out at once).
        self.local = threading.local()

    def push(self, task):
        task.state = "ready"
        local = self.local
        if getattr(local, "current", None) is task:
            local.out.append(task)
            return
        with self.cond:
            self.pushes += 1
            self.queue.append(task)
            # Idle threads each take one queued task; start a thread for the rest.
            if len(self.queue) > self.idle_count and len(self.threads) < self.size and not self.closing:
                self._start_thread()
            if self.idle_count:
                self.cond.notify()

    def _start_thread(self):
        self.serial += 1
        name = f"{self.name}-{self.serial}"
        t = threading.Thread(target=self._work, name=f"genloop-{name}", daemon=True)
        self.threads.append(t)
        self.workers.append(name)
        t.start()

    def _work(self):
        kernel = self.kernel
        step = kernel.step
        kernel.tls.pool = self
        _local.kernel = kernel
        me = threading.current_thread()
        cond, queue = self.cond, self.queue
        timeout = IO_KEEPALIVE if self.elastic else None
        local = self.local
        while True:
            with cond:
                while not queue:
                    if self.closing:
                        self._retire(me)
                        return
                    self.idle_count += 1
                    if kernel.clock.virtual:
                        kernel.main_pool.poke()
                    woke = cond.wait(timeout)
                    self.idle_count -= 1
                    if not woke and not queue and self.elastic:
                        self._retire(me)
                        return
                # IO steps block: one at a time, so a blocking call never holds others back.
                n = 1 if self.elastic else min(BATCH, len(queue) // len(self.threads) or 1)
                batch = [queue.popleft() for _ in range(n)]
            local.out = out = []
            for task in batch:
                home = task._pool
                local.current = task
                step(task)
                if home is not None and home.limited:
                    home.release()
            local.current = None
            if out:
                with cond:
                    self.pushes += 1
                    queue.extend(out)
                    if self.idle_count:
                        cond.notify(len(out))

    def _retire(self, me):
        self.threads.remove(me)
        self.workers.remove(me.name[len("genloop-"):])

    def idle(self) -> bool:
        with self.cond:
            return not self.queue and self.idle_count == len(self.threads)

    def close(self, timeout: float) -> list:
        """Stop the threads once their queue is empty; return those still alive."""
        with self.cond:
            self.closing = True
            self.cond.notify_all()
            threads = list(self.threads)
        for t in threads:
            t.join(timeout)
        return [t for t in threads if t.is_alive()]

    def snapshot(self):
        with self.cond:
            return list(self.queue)


class LimitedPool:
    """At most ``n`` tasks of this view in the parent pool at once."""

    kind = "limited"
    limited = True

    def __init__(self, parent, n, name):
        self.parent = parent
        self.n = n
        self.name = name
        self.running = 0
        self.pending = deque()
        self.lock = threading.Lock()
        self.pushes = 0

    @property
    def workers(self):
        return self.parent.workers

    def push(self, task):
        with self.lock:
            self.pushes += 1
            if self.running >= self.n:
                task.state = "ready"
                self.pending.append(task)
                return
            self.running += 1
        self.parent.push(task)

    def release(self):
        """One of our tasks finished a step: pass its slot on."""
        with self.lock:
            if not self.pending:
                self.running -= 1
                return
            task = self.pending.popleft()
        self.parent.push(task)

    def idle(self) -> bool:
        with self.lock:
            return not self.pending and not self.running

    def snapshot(self):
        with self.lock:
            return list(self.pending)
