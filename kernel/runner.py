"""``run``: the threaded driver. Main loop, worker pools, shutdown.

Shutdown protocol, in order, once the main task has ended:

1. cancel every task still alive;
2. keep the loop turning until they have all ended, for at most
   ``SHUTDOWN_GRACE`` seconds; a task that has not ended by then is
   reported by name;
3. stop every worker pool and join its threads (a thread stuck in a
   blocking call is reported, not waited for forever);
4. stop the slow-step watchdog, close the poller's epoll and wake-up fds;
5. return the main task's value or raise its exception.
"""
import logging
import threading
from time import monotonic as clock_real

from .core import Kernel, current_kernel
from .core import _local as _running
from .dispatchers import Dispatchers
from .monitor import start_monitor
from .pools import MainPool, ThreadPool
from .signals import install as install_signals
from .watchdog import Watchdog

log = logging.getLogger("genloop")

#: How long shutdown waits for cancelled tasks and worker threads to end.
SHUTDOWN_GRACE = 5.0
#: Slow-step report threshold on Main (asyncio's debug mode uses 0.1 s too).
SLOW_STEP = 0.1


def run(main, *args, clock=None, instruments=(), default_threads=None, io_threads=None,
        slow_step=SLOW_STEP, monitor=None):
    """Run ``main(*args)`` to completion on this thread, which becomes ``Dispatchers.Main``.

    Returns its value or raises its exception. Before returning, every task
    still alive is cancelled and reaped and every worker thread is stopped,
    so nothing started here outlives the call. ``slow_step`` (seconds, or
    None to turn it off) is the threshold of the slow-step report on Main.
    ``monitor`` (True, a port, or None to follow ``GENLOOP_MONITOR=1``) starts
    the console of ``kernel.monitor`` for the length of the call.
    """
    if getattr(_running, "kernel", None) is not None:
        raise RuntimeError("a kernel is already running on this thread; use spawn() inside it")
    ident = threading.get_ident()
    sizes = {}
    if default_threads:
        sizes[Dispatchers.Default.name] = default_threads
    if io_threads:
        sizes[Dispatchers.IO.name] = io_threads
    kernel = Kernel(clock=clock, instruments=instruments, thread_sizes=sizes,
                    make_pool=ThreadPool, main_pool=lambda k: MainPool(k.poller, ident))
    kernel.tls.pool = kernel.main_pool
    _running.kernel = kernel
    watchdog = Watchdog(kernel, ident, slow_step) if slow_step else None
    signals = install_signals(kernel)      # on the main thread, SIGINT/SIGTERM stop gracefully
    try:
        kernel.monitor = start_monitor(kernel, monitor)
        root = kernel.new_task(main, args, Dispatchers.Main, None, None)
        kernel.watch(root, lambda t: None)   # run() reports its outcome: no "nobody joined" log
        signals.root = root
        try:
            loop(kernel, lambda: root.done, watchdog)
        except (KeyboardInterrupt, SystemExit):
            _shutdown(kernel, watchdog)    # Ctrl-C: still cancel, reap and stop everything
            raise
        _shutdown(kernel, watchdog)
    finally:
        signals.close()
        _running.kernel = None
        if kernel.monitor:
            kernel.monitor.stop()
        if watchdog:
            watchdog.stop()
        kernel.poller.close()
    if (exc := signals.outcome(root)) is not None:
        raise exc
    return root.result


def loop(kernel, finished, watchdog=None):
    """Turn the Main loop until ``finished()``: step ready tasks, poll, fire timers."""
    pool = kernel.main_pool
    queue = pool.queue
    popleft = queue.popleft
    step = kernel.step
    clock = kernel.clock
    poller = kernel.poller
    tick = kernel.tick
    timers = kernel.timers
    while True:
        for _ in range(len(queue)):
            task = popleft()
            if watchdog is not None:
                watchdog.current = task
            step(task)
        if watchdog is not None:
            watchdog.current = None
        if finished():
            return
        if pool.inbox:
            pool.drain_inbox()
        if queue:
            if poller.waiting or timers.count:
                tick(0, poll=bool(poller.waiting))
            continue
        # Announce the sleep before reading the timers: a timer added by a
        # worker after this point pokes us, one added before is seen below.
        if not pool.try_sleep():
            continue
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


def _shutdown(kernel, watchdog):
    kernel.shutting_down = True      # from now on every task's end pokes Main
    newest = 0

    def cancel_new():
        """Cancel every task not cancelled yet, including those spawned during shutdown."""
        nonlocal newest
        with kernel.lock:
            fresh = [t for i, t in kernel.tasks.items() if i > newest]
            newest = max(kernel.tasks, default=newest)
        for t in fresh:
            t.cancel()

    cancel_new()
    if kernel.tasks:
        expired = threading.Event()
        timer = threading.Timer(SHUTDOWN_GRACE, lambda: (expired.set(), kernel.main_pool.poke()))
        timer.daemon = True
        timer.start()
        try:
            loop(kernel, lambda: cancel_new() or not kernel.tasks or expired.is_set(), watchdog)
        finally:
            timer.cancel()
            timer.join()
    for t in list(kernel.tasks.values()):
        log.error("task #%d %r did not end within %.1f s of being cancelled at shutdown "
                  "(it is %s: %r)", t.id, t.name, SHUTDOWN_GRACE, t.state, t.trap)
    for pool in list(kernel.pools.values()):
        if isinstance(pool, ThreadPool):
            for th in pool.close(SHUTDOWN_GRACE):
                log.error("worker thread %s is still busy after shutdown; it is left behind", th.name)


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
