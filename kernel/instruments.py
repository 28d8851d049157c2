"""Instruments: hooks into the scheduler, for tracing, stats and teaching tools.

Subclass ``Instrument`` and override what you need; pass instances to
``run(..., instruments=[...])``. Hooks run on the thread where the event
happens (a worker for steps, Main for polls, the watchdog for slow steps), so
an instrument that keeps state must lock it. A hook that raises is logged
once and skipped (``guarded``): it never breaks scheduling or shutdown.
"""
import logging

log = logging.getLogger("genloop")


class Instrument:
    def task_spawned(self, task):
        """A task was created (before its first step)."""

    def before_step(self, task):
        """``task`` is about to run on the current thread."""

    def after_step(self, task, trap):
        """``task`` stopped running; ``trap`` is what it yielded (None: checkpoint or end)."""

    def task_woken(self, task, waker):
        """A parked ``task`` goes back to its run queue; ``waker`` is the task whose step woke
        it, or None (the poller, a timer, a plain thread)."""

    def task_exited(self, task):
        """``task`` ended; ``task.result`` / ``task.exception`` are set."""

    def before_poll(self, timeout):
        """Main is about to wait for I/O for up to ``timeout`` seconds (None: until woken)."""

    def after_poll(self, woken):
        """Main's poll returned, waking ``woken`` tasks."""

    def slow_step(self, task, seconds, stack):
        """A step on Main has run ``seconds`` without yielding; ``stack`` is where it is."""


#: The hooks, by name: what ``guarded`` wraps.
HOOKS = ("task_spawned", "before_step", "after_step", "task_woken", "task_exited",
         "before_poll", "after_poll", "slow_step")


class _Guarded:
    """An instrument whose hooks cannot break the kernel.

    A hook that raises is logged once (per hook, with its traceback) and
    skipped: an instrument watches the scheduler, it must never stop a
    step, a wake-up or the shutdown. Only hooks the instrument overrides are
    called at all.
    """

    def __init__(self, instrument):
        self.instrument = instrument
        self._failed = set()
        for hook in HOOKS:
            method = getattr(instrument, hook, None)
            if method is None or getattr(method, "__func__", None) is getattr(Instrument, hook):
                setattr(self, hook, _ignore)
            else:
                setattr(self, hook, self._guard(hook, method))

    def _guard(self, hook, method):
        def call(*args):
            try:
                method(*args)
            except Exception:  # noqa: BLE001 - reported, never raised into the kernel
                if hook not in self._failed:
                    self._failed.add(hook)
                    log.exception("instrument %r failed in %s (reported once; the kernel goes on)",
                                  self.instrument, hook)
        call.__name__ = hook
        return call

    def __getattr__(self, name):      # anything else: the instrument's own
        return getattr(self.instrument, name)

    def __repr__(self):
        return f"guarded({self.instrument!r})"


def _ignore(*args):
    pass


def guarded(instrument) -> _Guarded:
    """``instrument`` with every hook guarded (see ``_Guarded``); kernels keep these."""
    return instrument if isinstance(instrument, _Guarded) else _Guarded(instrument)
