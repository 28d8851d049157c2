"""ChromeTracer: the kernel's steps as a Trace Event Format file (Perfetto, chrome://tracing).

One track per worker thread, one complete ("X") slice per step named after
the task (its arguments: the task, what it asked for, and the thread's CPU
time beside the wall time, so a step that waited for the GIL or the OS
shows), flow arrows from the task whose step woke another (or spawned it)
to the woken task's next step, and the poller's waits as slices on Main.
Below the threads, one track per task: its states over time (running, ready
in a run queue, waiting on what), the coroutine layer above the threads.
The format: https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU
"""
import itertools
import json
import os
import threading
import time

from .instruments import Instrument
from .introspect import describe
from .traps import SWITCH

#: Task tracks get thread ids from here on, below every worker thread's track.
TASK_TRACKS = 1_000_000


class ChromeTracer(Instrument):
    """Records every step; writes ``path`` when the main task ends, and again on leaving ``with``.

    Hooks run on every worker thread, so all state sits behind one lock.
    Use it as ``with ChromeTracer(path) as t: run(main, instruments=[t])`` to
    include the steps of the tasks cancelled at shutdown.
    """

    def __init__(self, path, name="genloop"):
        self.path = path
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self.events = [{"ph": "M", "name": "process_name", "pid": self._pid, "args": {"name": name}}]
        self._t0 = time.perf_counter_ns()
        self._cpu = {}               # track -> thread CPU time (ns) at the start of its step
        self._states = {}            # task id -> [state, since, woken while running]
        self._tids = {}              # thread ident -> small track number
        self._open = {}              # track -> (task id, start) of the step running there
        self._flows = {}             # woken task id -> (flow id, track, ts) of its waker
        self._flow_ids = itertools.count(1)
        self._poll_start = None
        self._main = 0               # Main's track, once it has one

    def _now(self):
        return (time.perf_counter_ns() - self._t0) / 1000.0   # microseconds, the format's unit

    def _track(self, name=None):
        """This thread's track number; its first use names the track (call under the lock)."""
        ident = threading.get_ident()
        tid = self._tids.get(ident)
        if tid is None:
            tid = self._tids[ident] = len(self._tids) + 1
            if name is None:
                thread = threading.current_thread().name
                name = thread[len("genloop-"):] if thread.startswith("genloop-") else "Main"
            if name == "Main":
                self._main = tid
            self.events.append({"ph": "M", "name": "thread_name", "pid": self._pid, "tid": tid,
                                "args": {"name": name}})
            self.events.append({"ph": "M", "name": "thread_sort_index", "pid": self._pid, "tid": tid,
                                "args": {"sort_index": 0 if name == "Main" else tid}})
        return tid

    # -- task states (call under the lock) ------------------------------------
    def _state(self, task, state, ts):
        """``task`` enters ``state`` at ``ts``: the state it leaves becomes a slice on its track."""
        old = self._states.get(task.id)
        if old is None:
            tid = TASK_TRACKS + task.id
            self.events.append({"ph": "M", "name": "thread_name", "pid": self._pid, "tid": tid,
                                "args": {"name": f"task #{task.id} {task.name}"}})
            self.events.append({"ph": "M", "name": "thread_sort_index", "pid": self._pid, "tid": tid,
                                "args": {"sort_index": tid}})
        elif old[1] < ts or state is None:
            self.events.append({"ph": "X", "name": old[0], "cat": "state", "pid": self._pid,
                                "tid": TASK_TRACKS + task.id, "ts": old[1], "dur": ts - old[1],
                                "args": {"task": task.id}})
        if state is None:
            self._states.pop(task.id, None)
        else:
            self._states[task.id] = [state, ts, False]

    # -- steps ---------------------------------------------------------------
    def before_step(self, task):
        with self._lock:
            tid = self._track()
            ts = self._now()
            self._open[tid] = ts
            self._cpu[tid] = time.thread_time_ns()
            self._state(task, "running", ts)
            flow = self._flows.pop(task.id, None)
            if flow is not None:
                fid, from_tid, from_ts = flow
                common = {"name": "wake", "cat": "wake", "id": fid, "pid": self._pid}
                self.events.append({**common, "ph": "s", "tid": from_tid, "ts": from_ts})
                self.events.append({**common, "ph": "f", "bp": "e", "tid": tid, "ts": ts})

    def after_step(self, task, trap):
        if task.done:
            did = "raised " + repr(task.exception) if task.exception is not None else "returned"
        else:
            did = describe(trap)
        cpu_end = time.thread_time_ns()
        with self._lock:
            tid = self._track()
            start = self._open.pop(tid, None)
            if start is None:
                return
            now = self._now()
            self.events.append({"ph": "X", "name": task.name, "cat": "step", "pid": self._pid, "tid": tid,
                                "ts": start, "dur": now - start,
                                "args": {"task": task.id, "trap": did,
                                         "cpu_us": round((cpu_end - self._cpu.pop(tid, cpu_end)) / 1000.0, 1)}})
            state = self._states.get(task.id)
            if task.done:
                self._state(task, None, now)
            elif trap is None or trap[0] == SWITCH or (state is not None and state[2]):
                self._state(task, "ready", now)        # re-queued, or woken before this step had ended
            else:
                self._state(task, "waiting: " + did, now)

    def task_woken(self, task, waker):
        with self._lock:
            state = self._states.get(task.id)
            if state is not None and state[0] == "running":
                state[2] = True        # woken from another thread while its step still runs
            else:
                self._state(task, "ready", self._now())
        if waker is not None:
            self._flow_from_here(task)

    def task_spawned(self, task):
        with self._lock:
            self._state(task, "ready", self._now())
        if task.parent is not None:      # spawned inside its parent's step, on this thread
            self._flow_from_here(task)

    def _flow_from_here(self, task):
        """Start an arrow here; it is written when ``task`` next runs, so every arrow has two ends."""
        with self._lock:
            self._flows[task.id] = (next(self._flow_ids), self._track(), self._now())

    def task_exited(self, task):
        if task.parent is None:
            self.save()

    # -- the poller and slow steps (Main) ------------------------------------
    def before_poll(self, timeout):
        self._poll_start = (self._now(), timeout)

    def after_poll(self, woken):
        start, timeout = self._poll_start
        if timeout == 0 and not woken:
            return          # a zero-timeout look that found nothing: not a wait (None is: until woken)
        with self._lock:
            tid = self._track("Main")
            self.events.append({"ph": "X", "name": "poll", "cat": "poll", "pid": self._pid, "tid": tid,
                                "ts": start, "dur": self._now() - start,
                                "args": {"timeout": timeout, "woken": woken}})

    def slow_step(self, task, seconds, stack):
        at = f"{stack[-1].filename}:{stack[-1].lineno}" if stack else "?"
        with self._lock:
            self.events.append({"ph": "i", "s": "t", "name": "slow step", "cat": "slow", "pid": self._pid,
                                "tid": self._main, "ts": self._now(),
                                "args": {"task": task.id, "name": task.name, "seconds": round(seconds, 3),
                                         "at": at}})

    # -- output --------------------------------------------------------------
    def trace(self) -> dict:
        """The trace as a JSON-ready dict (what ``save`` writes)."""
        with self._lock:
            return {"traceEvents": list(self.events), "displayTimeUnit": "ms"}

    def save(self):
        with open(self.path, "w") as f:
            json.dump(self.trace(), f)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.save()
