"""``run_workers``: one kernel per process, several processes on one port.

A kernel's Main thread is one core at most (the GIL), so a server that should
use every core forks: each child runs its own kernel, and the servers inside
bind the same port with ``reuse_port=True`` so the OS spreads connections
across them (SO_REUSEPORT, as nginx's ``reuseport`` and gunicorn do).
"""
import os
import signal
import sys
import traceback

from genloop.kernel import run

#: Signals the parent passes on to its children, so stopping the parent stops them.
FORWARDED = (signal.SIGINT, signal.SIGTERM)
#: What a child exits with after a Ctrl-C stopped it (the shell's 128 + SIGINT).
INTERRUPTED = 128 + signal.SIGINT


def run_workers(main, *args, workers: int = 1, **run_kwargs):
    """Run ``kernel.run(main, *args, **run_kwargs)`` in ``workers`` processes.

    ``workers=1`` runs in this process and returns ``main``'s value. Otherwise
    the parent forks, and on SIGINT or SIGTERM sends SIGTERM to every child:
    each stops gracefully (``kernel.signals``: its servers stop accepting and
    drain) and exits 0. SIGTERM, not SIGINT, because a Ctrl-C at a terminal
    reaches the children directly too, and a second SIGINT would cut their
    stop short. The parent reaps them all and returns their exit codes
    (negative: killed by that signal; ``INTERRUPTED`` after a Ctrl-C). A child
    whose ``main`` raised exits with status 1 after printing it.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers == 1:
        return run(main, *args, **run_kwargs)
    sys.stdout.flush()
    sys.stderr.flush()
    children = []
    previous = {sig: signal.getsignal(sig) for sig in FORWARDED}

    def forward(signum, frame):
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass  # already gone; reaped below

    for sig in FORWARDED:
        signal.signal(sig, forward)
    try:
        try:
            for _ in range(workers):
                pid = os.fork()
                if pid == 0:
                    _child(main, args, run_kwargs)
                children.append(pid)
        except BaseException:
            forward(signal.SIGTERM, None)     # a failed fork: stop the ones that started
            raise
        finally:
            codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
        return codes
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _child(main, args, run_kwargs):
    """Run one kernel and leave without returning into the parent's code."""
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_DFL)
    code = 0
    try:
        run(main, *args, **run_kwargs)
    except SystemExit as e:           # Terminated (a graceful stop) has code 0
        code = e.code if isinstance(e.code, int) else 1
    except KeyboardInterrupt:
        code = INTERRUPTED
    except BaseException:  # noqa: BLE001 - reported here: the parent only sees a status
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)   # no atexit handlers or buffers of the parent run twice

