"""Run queues with real threads behind them: the threaded driver's half.

The scheduler core only ever calls ``pool.push(task)``; these classes decide
which thread steps it. They and the stepper's simulated pools share one face,
``kernel.runqueue.RunQueue``. Their hot paths take locks as ``acquire()``
and try/finally ``release()``, half the cost of ``with`` (see ``kernel.poller``).
"""
import logging
import threading
from collections import deque

from .current import set_current_kernel
from .runqueue import end_turn
from .task import READY

log = logging.getLogger("genloop")

#: Tasks a worker takes from the shared queue per lock acquisition. Tasks it
#: re-queues meanwhile wait in a private list until the batch ends, so a busy
#: worker takes the shared lock twice per batch, not twice per step: under the
#: GIL, a lock handed between threads on two cores per step costs ~3x the step.
BATCH = 32
#: Kotlin keeps idle IO threads for 60 s; a shorter life suits a library that
#: also runs inside test suites, and re-creating a thread costs ~50 µs.
IO_KEEPALIVE = 10.0
#: How long a worker may stay in one step before an idle sibling hands the rest
#: of its batch back to the shared queue; tokio's default global-queue interval
#: is a few steps, this is a few milliseconds: short against a slow step, long
#: against a fast batch, so fast batches are never split.
STEAL_AFTER = 0.005


class MainPool:
    """The run queue of the thread that called ``run``.

    The Main thread appends to ``queue`` without a lock (it is the only thread
    that touches it); other threads go through ``inbox`` under ``lock`` and
    wake the poller if Main is asleep in it. The state that Main owns (the
    wait state of its tasks) is handed over the same way: another thread
    asks Main to act on it with ``call_soon`` (asyncio's
    ``call_soon_threadsafe``).
    """

    kind = "main"
    limited = False

    def __init__(self, poller, ident):
        self.queue = deque()
        self.inbox = deque()
        self.calls = deque()          # call_soon's functions, under lock like inbox
        self.after_turn = deque()     # Kernel.at_turn_end's calls: Main's thread only, no lock
        self.lock = threading.Lock()
        self.sleeping = False
        self.poller = poller
        self.ident = ident
        self.name = "Main"
        self.workers = ("Main",)
        self.pushes = 0

    def push(self, task, get_ident=threading.get_ident):
        task.state = READY
        if get_ident() == self.ident:
            self.queue.append(task)
        else:
            self._hand_over(self.inbox, task)

    def on_own_thread(self, get_ident=threading.get_ident) -> bool:
        """Is the caller Main, the thread that owns this queue's tasks?"""
        return get_ident() == self.ident

    def call_soon(self, fn) -> None:
        """Have Main call ``fn()`` at its next turn (from any thread)."""
        self._hand_over(self.calls, fn)

    def _hand_over(self, box, item):
        """Another thread's task or call for Main: into ``box``, waking Main if it sleeps."""
        self.lock.acquire()
        try:
            self.pushes += 1
            box.append(item)
            if self.sleeping:
                self.sleeping = False
                self.poller.wake_main()
        finally:
            self.lock.release()

    def poke(self):
        """Make Main look again at timers and pools (from any thread)."""
        with self.lock:
            if self.sleeping:
                self.sleeping = False
                self.poller.wake_main()

    def drain_inbox(self):
        """Take what other threads handed over: queue their tasks, run their calls (on Main)."""
        self.lock.acquire()
        try:
            self.queue.extend(self.inbox)
            self.inbox.clear()
            calls = list(self.calls)    # the deques stay the same objects: _hand_over finds them unlocked
            self.calls.clear()
        finally:
            self.lock.release()
        for fn in calls:
            try:
                fn()
            except Exception:
                log.exception("call_soon function %r failed", fn)

    def try_sleep(self) -> bool:
        """Announce that Main is about to block; False if work arrived meanwhile."""
        self.lock.acquire()
        try:
            if not self.inbox and not self.calls:
                self.sleeping = True
                return True
        finally:
            self.lock.release()
        self.drain_inbox()
        return False

    def woke(self):
        self.lock.acquire()
        try:
            self.sleeping = False
        finally:
            self.lock.release()

    def idle(self) -> bool:
        return not self.queue and not self.inbox and not self.calls

    def snapshot(self):
        with self.lock:
            return list(self.queue) + list(self.inbox)


class _Worker:
    """One worker thread's batch, where an idle sibling can reach it (``ThreadPool._steal``).

    ``batch`` holds the tasks taken from the shared queue and not stepped
    yet, ``out`` the tasks its steps re-queued. Off the pool's lock, the
    owner only pops ``batch`` and appends to ``out``, one item at a time,
    which ``collections.deque`` documents as thread-safe; everything else
    (filling ``batch``, flushing ``out``, a thief's taking) happens under the
    pool's lock. So each task is taken by exactly one thread, its owner or a
    thief.
    """

    __slots__ = ("name", "batch", "out", "seen")

    def __init__(self, name):
        self.name = name
        self.batch = deque()
        self.out = deque()
        self.seen = None      # (next task of the batch, len(out)) at a thief's latest look


class ThreadPool:
    """A shared run queue and the worker threads that drain it.

    Threads start on demand, up to ``size``; an elastic pool lets idle threads
    retire after ``IO_KEEPALIVE`` seconds. A worker takes up to ``BATCH``
    tasks at a time; while one of its steps runs longer than ``STEAL_AFTER``,
    an idle sibling hands the rest of its batch back to the shared queue, so
    one long step holds back no other runnable task (work stealing, as
    Kotlin's Default and tokio do).
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
        self._batches = []      # every live worker's _Worker (under cond)

    def push(self, task):
        task.state = READY
        self.cond.acquire()
        try:
            self.pushes += 1
            self.queue.append(task)
            # Idle threads each take one queued task; start a thread for the rest.
            if len(self.queue) > self.idle_count and len(self.threads) < self.size and not self.closing:
                self._start_thread()
            if self.idle_count:
                self.cond.notify()
        finally:
            self.cond.release()

    def _start_thread(self):
        self.serial += 1
        name = f"{self.name}-{self.serial}"
        t = threading.Thread(target=self._work, args=(_Worker(name),), name=f"genloop-{name}", daemon=True)
        self.threads.append(t)
        self.workers.append(name)
        t.start()

    def _work(self, me):
        kernel = self.kernel
        step = kernel.step
        kernel.tls.pool = self
        set_current_kernel(kernel)
        cond, queue = self.cond, self.queue
        keepalive = IO_KEEPALIVE if self.elastic else None
        out = me.out     # the batch's checkpoints wait here until it ends (other pushes go out at once)
        kernel.tls.after_turn = after_turn = deque()    # this thread's at_turn_end calls: no lock
        batch = me.batch
        take, pop = batch.popleft, queue.popleft
        with cond:
            self._batches.append(me)
        while True:
            cond.acquire()
            try:
                while not queue:
                    if self.closing:
                        self._retire(me)
                        return
                    busy = self._steal(me)
                    if queue:
                        break
                    self.idle_count += 1
                    if kernel.clock.virtual:
                        kernel.main_pool.poke()
                    # A sibling with work in hand: look again after STEAL_AFTER.
                    woke = cond.wait(STEAL_AFTER if busy else keepalive)
                    self.idle_count -= 1
                    if not woke and not busy and not queue and self.elastic:
                        self._retire(me)
                        return
                # IO steps block: one at a time, so a blocking call never holds others back.
                n = 1 if self.elastic else min(BATCH, len(queue) // len(self.threads) or 1)
                batch.extend([pop() for _ in range(n)])
            finally:
                cond.release()
            while True:
                try:
                    task = take()
                except IndexError:      # the batch is done (or a thief took the rest)
                    break
                home = task._pool
                try:
                    again = step(task) is True
                except (KeyboardInterrupt, SystemExit) as e:
                    kernel.interrupt(e)      # Main stops run(); this worker goes on
                    again = False
                if again:                    # a checkpoint: it waits for the end of the batch
                    if home is self:
                        task.state = READY
                        out.append(task)
                    else:                    # a view's slot, or Unconfined
                        home.push(task)
                if home.limited:
                    home.release()
            # Drop the last task: an idle worker must not keep it (and its dispatcher) alive.
            task = home = None
            if after_turn:
                end_turn(after_turn)
            if out:
                # Under cond, as a thief takes from ``out``; only this thread appends to it.
                cond.acquire()
                try:
                    self.pushes += 1
                    queue.extend(out)
                    if self.idle_count:
                        cond.notify(len(out))
                    out.clear()
                finally:
                    cond.release()

    def _steal(self, me) -> bool:
        """Hand back the batch of every sibling stuck in one step since our last look (under cond).

        A worker that has taken no task from its batch and re-queued none
        since the latest look (``STEAL_AFTER`` ago) is in one long step:
        reading that costs its owner nothing per step. Returns whether some
        sibling has work in hand (worth another look).
        """
        moved = 0
        busy = False
        for w in self._batches:
            if w is me or not (w.batch or w.out):
                continue
            busy = True
            try:
                seen = (w.batch[0] if w.batch else None, len(w.out))
            except IndexError:        # its owner took the last one meanwhile: not stuck
                continue
            if seen != w.seen:
                w.seen = seen         # moving on: look again after STEAL_AFTER
                continue
            for tasks in (w.batch, w.out):
                try:
                    while True:
                        self.queue.append(tasks.popleft())
                        moved += 1
                except IndexError:
                    pass
        if moved:
            self.pushes += 1
            self.cond.notify(moved)
        return busy

    def _retire(self, me):
        self.threads.remove(threading.current_thread())
        self.workers.remove(me.name)
        self._batches.remove(me)

    def idle(self) -> bool:
        with self.cond:
            return not self.queue and self.idle_count == len(self.threads)

    def stop(self) -> None:
        """Let the threads end once their queue is empty (from any thread, even one of them)."""
        with self.cond:
            self.closing = True
            self.cond.notify_all()

    def close(self, timeout: float) -> list:
        """``stop``, then join the threads; return those still alive after ``timeout``."""
        self.stop()
        with self.cond:
            threads = list(self.threads)
        for t in threads:
            t.join(timeout)
        return [t for t in threads if t.is_alive()]

    def snapshot(self):
        with self.cond:
            return list(self.queue)
