"""The slow-step watchdog: notices a step on Main that will not yield.

A thread samples which task Main is stepping, read off Main's stack
(``sys._current_frames()``: the innermost ``Kernel.step`` frame's ``task``),
and that task's step count, so the loop pays nothing per step. The same
(task, step) seen for longer than the threshold is a slow step; it is
reported while it is still running, with the line Main is executing, read
from the same stack — so even a step that never returns is named.
"""
import logging
import os
import sys
import threading
import time
import traceback

from .introspect import user_frames

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
        """The task whose step Main is in now, or None."""
        frame = sys._current_frames().get(self.main_ident)
        while frame is not None:
            code = frame.f_code
            if code.co_name == "step" and code.co_filename == _CORE:
                return frame.f_locals.get("task")
            frame = frame.f_back
        return None

    def _report(self, task, seconds):
        stack = self._stack(task)
        where = stack[-1] if stack else None
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
        frame = sys._current_frames().get(self.main_ident)
        stack = traceback.extract_stack(frame) if frame else []
        steps = [i for i, fs in enumerate(stack) if fs.filename == _CORE and fs.name == "step"]
        inner = [fs for fs in stack[steps[-1] + 1:] if not fs.filename.startswith(_HERE)] if steps else []
        if inner:
            return inner
        return [traceback.FrameSummary(f, n, fn, line=src) for f, n, fn, src in user_frames(task)]

    def stop(self):
        self._stop.set()
        self._thread.join()
