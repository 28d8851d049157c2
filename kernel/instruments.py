"""Instruments: hooks into the scheduler, for tracing, stats and teaching tools.

Subclass ``Instrument`` and override what you need; pass instances to
``run(..., instruments=[...])``. Hooks run on the thread where the event
happens (a worker for steps, Main for polls, the watchdog for slow steps), so
an instrument that keeps state must lock it.
"""


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
