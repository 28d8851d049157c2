"""The slow-step watchdog: notices a step on Main that will not yield.

A thread samples which task Main is stepping and that task's step count:
the Main loop's frame (``kernel.loop_frame``) holds the task of the step
under way in its local ``task`` (None between passes), so the loop pays
nothing per step. The same (task, step) seen for longer than the threshold
is a slow step; it is reported while it is still running, with the line Main
is executing, read from ``sys._current_frames()`` — so even a step that
never returns is named. Only a report reads all the threads' stacks that
way (``introspect.current_frames``, which works around a CPython 3.11
deadlock of that call), never the sampling.
"""
import logging
import os
import threading
import time
import traceback

from .introspect import current_frames, user_frames

log = logging.getLogger("genloop")
_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_CORE = _HERE + "core.py"

ADVICE = ("move blocking calls off Main with `yield from with_context(Dispatchers.IO, fn, ...)` "
          "and CPU-heavy work with `with_context(Dispatchers.Default, fn, ...)`")


class Watchdog:
    def __init__(self, kernel, main_ident, threshold):
        self.kernel = kernel
        self.main_ident = main_ident
        self.threshold = threshold
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="genloop-watchdog", daemon=True)
        self._thread.start()

    def _watch(self):
        last = None
        since = 0.0
        reported = False
        interval = self.threshold / 4
        while not self._stop.wait(interval):
            task = self._stepping()
            key = None if task is None else (task, task.steps)
            now = time.monotonic()
            if key != last:
                last, since, reported = key, now, False
                continue
            if key is not None and not reported and now - since >= self.threshold:
                reported = True
                self._report(task, now - since)

    def _stepping(self):
        """The task whose step Main is in now, or None (read under the GIL, as Main writes it)."""
        frame = self.kernel.loop_frame
        return None if frame is None else frame.f_locals.get("task")

    def _report(self, task, seconds):
        stack = self._stack(task)
        # The innermost frame with a line: one that runs an instruction of no
        # line (say, an exception's clean-up) has none to show.
        where = next((fs for fs in reversed(stack) if fs.lineno is not None), None)
        with self.kernel.lock:
            self.kernel.stats["slow_steps"] += 1
        at = f"{where.filename}:{where.lineno} ({where.line})" if where else "an unknown line"
        log.warning("slow step on Main: task #%d %r has run %.2f s without yielding, at %s; "
                    "every other task on Main waits meanwhile: %s",
                    task.id, task.name, seconds, at, ADVICE)
        for ins in self.kernel.instruments:
            ins.slow_step(task, seconds, stack)

    def _stack(self, task):
        """Main's frames from the task's code inward, kernel frames left out.

        While the kernel itself handles a trap for the task (say, a long run
        of spawns), the task's generator is suspended, not on the stack: then
        its own ``yield from`` chain says where it is.
        """
        frame = current_frames().get(self.main_ident)
        stack = traceback.extract_stack(frame) if frame else []
        steps = [i for i, fs in enumerate(stack) if fs.filename == _CORE and fs.name == "step"]
        inner = [fs for fs in stack[steps[-1] + 1:] if not fs.filename.startswith(_HERE)] if steps else []
        if inner:
            return inner
        return [traceback.FrameSummary(f, n, fn, line=src) for f, n, fn, src in user_frames(task)]

    def stop(self):
        self._stop.set()
        self._thread.join()
