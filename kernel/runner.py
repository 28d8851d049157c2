"""``run``: the threaded driver. Main loop, worker pools, shutdown.

Shutdown protocol, in order, once the main task has ended (on any thread:
its end wakes Main) or a task raised ``KeyboardInterrupt``/``SystemExit``
(on any thread):

1. cancel every task still alive, and every task spawned meanwhile;
2. keep the loop turning until they have all ended, for at most
   ``SHUTDOWN_GRACE`` seconds; a task still alive then (one that caught
   ``Cancelled`` and waits in its cleanup) is cancelled once more and given
   ``SHUTDOWN_RECANCEL_GRACE`` seconds; one alive after that is reported
   by name;
3. stop every worker pool and join its threads (a thread stuck in a
   blocking call is reported, not waited for forever);
4. stop the slow-step watchdog, close the poller's epoll and wake-up fds;
5. return the main task's value or raise its exception (or the interrupt).
"""
import logging
import sys
import threading
from time import monotonic as clock_real

from .core import Kernel
from .current import current_kernel, set_current_kernel
from .dispatchers import Dispatchers
from .monitor import start_monitor
from .pools import MainPool, ThreadPool
from .runqueue import LimitedPool, end_turn
from .signals import install as install_signals
from .task import READY
from .watchdog import Watchdog

log = logging.getLogger("genloop")

#: How long shutdown waits for cancelled tasks and worker threads to end.
SHUTDOWN_GRACE = 5.0
#: How long shutdown waits after cancelling a second time the tasks still alive at ``SHUTDOWN_GRACE``.
SHUTDOWN_RECANCEL_GRACE = 1.0
#: Slow-step report threshold on Main (asyncio's debug mode uses 0.1 s too).
SLOW_STEP = 0.1


def run(main, *args, clock=None, instruments=(), default_threads=None, io_threads=None,
        slow_step=SLOW_STEP, monitor=None):
    """Run ``main(*args)`` to completion on this thread, which becomes ``Dispatchers.Main``.

    Returns its value or raises its exception. Before returning, every task
    still alive is cancelled and reaped and every worker thread is stopped,
    so nothing started here outlives the call. ``slow_step`` (seconds, or
    None to turn it off) is the threshold of the slow-step report on Main.
    ``monitor`` (True: a private Unix socket; a path; a TCP port, with a
    token; or None to follow ``GENLOOP_MONITOR=1``) starts the console of
    ``kernel.monitor`` for the length of the call (see ``kernel.monitor``).
    """
    if current_kernel() is not None:
        raise RuntimeError("a kernel is already running on this thread; use spawn() inside it")
    ident = threading.get_ident()
    sizes = {}
    if default_threads:
        sizes[Dispatchers.Default.name] = default_threads
    if io_threads:
        sizes[Dispatchers.IO.name] = io_threads
    kernel = Kernel(clock=clock, instruments=instruments, thread_sizes=sizes, make_pool=ThreadPool,
                    make_limited=LimitedPool, main_pool=lambda k: MainPool(k.poller, ident))
    kernel.tls.pool = kernel.main_pool
    kernel.tls.after_turn = kernel.main_pool.after_turn
    set_current_kernel(kernel)
    watchdog = Watchdog(kernel, ident, slow_step) if slow_step else None
    signals = install_signals(kernel)      # on the main thread, SIGINT/SIGTERM stop gracefully
    try:
        kernel.monitor = start_monitor(kernel, monitor)
        root = kernel.new_task(main, args, Dispatchers.Main, None, None)
        # run() reports the outcome (no "nobody joined" log); the root may end
        # on any thread (switch_to, Unconfined), and its end wakes Main.
        kernel.watch(root, lambda t: kernel.stop())
        signals.root = root
        try:
            loop(kernel)
            if kernel.interrupted is not None:
                raise kernel.interrupted     # Ctrl-C or exit() in a task on a worker thread
        except (KeyboardInterrupt, SystemExit):
            _shutdown(kernel)    # Ctrl-C: still cancel, reap and stop everything
            raise
        _shutdown(kernel)
    finally:
        signals.close()
        set_current_kernel(None)
        kernel.loop_frame = None       # the loop's frame holds the kernel: no cycle left behind
        if kernel.monitor:
            kernel.monitor.stop()
        if watchdog:
            watchdog.stop()
        kernel.poller.close()
    if (exc := signals.outcome(root)) is not None:
        raise exc
    return root.result


def loop(kernel, finished=None):
    """Turn the Main loop until ``kernel.stopping`` and ``finished()``: step ready tasks, poll, fire timers.

    ``kernel.stopping`` is the flag every turn reads; ``finished`` (shutdown's
    test) is called only once it is set.
    """
    pool = kernel.main_pool
    queue = pool.queue
    popleft, append = queue.popleft, queue.append
    step = kernel.step
    clock = kernel.clock
    now = clock.now
    poller = kernel.poller
    tick = kernel.tick
    timers = kernel.timers
    after_turn = pool.after_turn
    task = None
    kernel.loop_frame = sys._getframe()   # where the watchdog looks for the task Main steps
    while True:
        kernel.turn_time = now()      # "waiting since" for the tasks this turn parks
        for _ in range(len(queue)):
            task = popleft()
            if step(task) is True:                # a checkpoint: back to the end of the queue
                if task._pool is pool:
                    task.state = READY
                    append(task)
                else:                     # Unconfined, or a view over Main
                    task._pool.push(task)
        task = None                       # no step now (the watchdog reads this frame's ``task``)
        if after_turn:
            end_turn(after_turn)
        if kernel.stopping and (finished is None or finished()):
            return
        if pool.inbox or pool.calls:
            pool.drain_inbox()
        if queue:
            if poller.waiting or timers.count:
                tick(0, poll=bool(poller.waiting))
            continue
        # Announce the sleep before reading the timers: a timer another thread
        # hands over after this point wakes us, one handed over before is
        # inserted by try_sleep (it runs the calls waiting) and seen below.
        # The same holds for the end: a root ending elsewhere after this point
        # pokes us, one that ended before is seen here.
        if not pool.try_sleep():
            continue
        if kernel.stopping and (finished is None or finished()):
            pool.woke()
            return
        timeout = kernel.next_timeout()
        if timeout == 0:
            pool.woke()
            tick(0, poll=bool(poller.waiting))
        elif not clock.virtual or timeout is None:
            tick(timeout)
            pool.woke()
        elif not kernel.workers_idle():
            tick(None)            # a worker's push, or its going idle, pokes us
            pool.woke()
        elif not poller.waiting:
            pool.woke()
            clock.advance_to(clock.now() + timeout)   # nothing can happen before the timer
            tick(0, poll=False)
        else:
            started = clock_real()    # I/O pending: virtual time follows real time
            tick(timeout)
            pool.woke()
            clock.advance_to(clock.now() + min(timeout, clock_real() - started))
            tick(0, poll=False)


def _shutdown(kernel):
    kernel.shutting_down = True      # from now on every task's end pokes Main
    kernel.stopping = True           # so the loop asks shutdown's own test (after a Ctrl-C it may not be)
    seen = set()

    def cancel_new():
        """Cancel every task not cancelled yet, including those spawned during shutdown."""
        for t in list(kernel.tasks.values()):     # one atomic copy: spawns take no lock
            if t.id not in seen:
                seen.add(t.id)
                t.cancel()

    cancel_new()
    _turn_until_empty(kernel, SHUTDOWN_GRACE, cancel_new)
    if kernel.tasks:
        # Still alive: they caught Cancelled and wait in their cleanup. A
        # cancel after the first is delivered again: interrupt that wait.
        for t in list(kernel.tasks.values()):
            t.cancel()
        _turn_until_empty(kernel, SHUTDOWN_RECANCEL_GRACE, cancel_new)
    for t in list(kernel.tasks.values()):
        log.error("task #%d %r did not end within %.1f s of being cancelled twice at shutdown "
                  "(it is %s: %r)", t.id, t.name, SHUTDOWN_GRACE + SHUTDOWN_RECANCEL_GRACE, t.state, t.trap)
    with kernel.lock:
        pools = [*kernel.pools.values(), *kernel.retired]
    for pool in pools:
        if isinstance(pool, ThreadPool):
            for th in pool.close(SHUTDOWN_GRACE):
                log.error("worker thread %s is still busy after shutdown; it is left behind", th.name)


def _turn_until_empty(kernel, grace, cancel_new):
    """Turn the Main loop until the task table is empty, for at most ``grace`` seconds."""
    if not kernel.tasks:
        return
    expired = threading.Event()
    timer = threading.Timer(grace, lambda: (expired.set(), kernel.main_pool.poke()))
    timer.daemon = True
    timer.start()
    try:
        loop(kernel, lambda: cancel_new() or not kernel.tasks or expired.is_set())
    finally:
        timer.cancel()
        timer.join()


def notify_closing(f) -> None:
    """Call before closing ``f`` if a task may wait on it (trio's ``notify_closing``).

    Its waiters are woken with ``ClosedResourceError`` and the poller forgets
    the fd, so the number can be reused. Works from the kernel's threads; from
    elsewhere use ``task.kernel.forget_fd``.
    """
    kernel = current_kernel()
    if kernel is None:
        return
    kernel.forget_fd(f)
