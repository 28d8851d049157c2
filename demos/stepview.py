"""The stepping session behind ``genloop step``: one scheduler step per Enter, drawn with rich.

A ``Session`` drives a ``kernel.stepper.Stepper`` and keeps what one
``StepEvent`` does not hold: the recent history of every worker lane and the
breakpoints. Keys are read as lines, from a terminal or a pipe alike, so a
lesson can be scripted (``printf '\\n\\nc\\n' | genloop step 01``) and recorded.
The recorded transcript is plain text, one block per step, with file names
cut to their base names, so the same script gives the same transcript on any
machine.
"""
import linecache
import os
import select
import time
from collections import deque

from rich.console import Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from genloop.kernel.introspect import task_tree, user_frames

#: Steps of history drawn per worker lane.
HISTORY = 16
#: Source lines shown above and below the line a task waits on.
CONTEXT = 4
KEYS = "Enter: step   c: continue   b NAME: break when NAME runs   t: task tree   q: quit"


class Session:
    """One stepping session over ``stepper``, for ``script`` (the file its ``main`` came from)."""

    def __init__(self, stepper, script, console, record=None):
        self.stepper = stepper
        self.script = os.path.abspath(script)
        self.console = console
        self.record = record            # a text file for the transcript, or None
        self.lanes = {}                 # worker -> the task ids of its last HISTORY steps (None: idle)
        self.breaks = set()
        self.event = None
        self.chain = []                 # the user's frames of the task that just ran

    # -- stepping ------------------------------------------------------------
    def advance(self):
        """Take one step; record it; returns the ``StepEvent`` (None at the end)."""
        event = self.stepper.step()
        if event is None:
            return None
        self.event = event
        task = self.stepper.kernel.tasks.get(event.task_id)      # gone once it has ended
        self.chain = user_frames(task) if task is not None else []
        for worker in self.stepper.workers:
            lane = self.lanes.setdefault(worker, deque([None] * HISTORY, maxlen=HISTORY))
            lane.append(event.task_id if worker == event.worker else None)
        if self.record:
            self.record.write(self.transcript_block() + "\n\n")
            self.record.flush()
        return event

    def hits_break(self, event) -> bool:
        return bool(self.breaks & {event.task_name, f"#{event.task_id}", str(event.task_id)})

    def run(self, keys, auto=None, until=None) -> int:
        """Read commands from ``keys`` (lines) until the end or ``q``; the exit status.

        ``auto``: seconds after which a step is taken without a key (a pipe
        that ends then leaves the session stepping by itself). ``until``:
        step without stopping up to that step number.
        """
        going = "until" if until else None      # None, "until" or "continue"
        self.console.print(Text(f"{os.path.basename(self.script)}: main() is ready to run on Main.  {KEYS}"))
        try:
            while True:
                if going:
                    if self.advance() is None:
                        return self.finish()
                    if (going == "continue" and self.hits_break(self.event)) or \
                            (going == "until" and self.stepper.number >= until):
                        going = None
                        self.show()
                    continue
                command, keys = self._command(keys, auto)
                if command == "":
                    if self.advance() is None:
                        return self.finish()
                    self.show()
                elif command == "c":
                    going = "continue"
                elif command == "q":
                    self.console.print(f"stopped at step {self.stepper.number}; "
                                       "the tasks still alive are cancelled")
                    return 0
                elif command == "t":
                    self.console.print(self.tree())
                elif command.startswith("b ") and command[2:].strip():
                    self.breaks.add(command[2:].strip())
                    self.console.print(f"break when {command[2:].strip()} runs "
                                       f"(breakpoints: {', '.join(sorted(self.breaks))})")
                else:
                    self.console.print(f"unknown key {command!r}; {KEYS}")
        except RuntimeError as e:     # the stepper's own verdict, e.g. a deadlock
            self.console.print(Text(f"stopped at step {self.stepper.number}: {e}", style="bold red"))
            return 1
        finally:
            self.stepper.close()

    def _command(self, keys, auto):
        """The next command line and the key source (None once it has ended and ``auto`` runs)."""
        if keys is None:
            time.sleep(auto)          # --auto with no keys left: the pace of the lesson
            return "", None
        if self.console.is_terminal:
            self.console.print("> ", end="")
        if auto is not None and not select.select([keys], [], [], auto)[0]:
            return "", keys
        line = keys.readline()
        if not line:                  # end of input
            return ("", None) if auto is not None else ("q", None)
        return line.strip(), keys

    def finish(self) -> int:
        """The main task has ended: say how, and the exit status."""
        main = self.stepper.main
        outcome = (f"raised {main.exception!r}" if main.exception is not None
                   else f"returned {main.result!r}")
        line = f"end: main {outcome} after {self.stepper.number} steps, t={self.stepper.clock.now():.3f}"
        if self.record:
            self.record.write(line + "\n")
        self.console.print(Text(line, style="bold"))
        return 1 if main.exception is not None else 0

    # -- the transcript ------------------------------------------------------
    def transcript_block(self) -> str:
        e = self.event
        lines = [f"step {e.number}  t={e.time:.3f}  {e.worker}  task #{e.task_id} {e.task_name}",
                 f"  did: {e.action}"]
        if self.chain:
            lines.append("  at: " + _calls(self.chain))
            lines.append(f"      {self.chain[-1][3]}")
        lines.append("  queues: " + "  ".join(f"{name} [{', '.join(q)}]" for name, q in e.queues.items()))
        lines.append("  timers: " + (", ".join(f"{d:.3f} {who}" for d, who in e.timers) or "-"))
        lines.append("  io: " + (", ".join(f"fd {fd} {mode} {who}" for fd, mode, who in e.io) or "-"))
        return "\n".join(lines)

    # -- the screen ----------------------------------------------------------
    def show(self):
        if self.console.is_terminal:
            self.console.clear()
        self.console.print(self.screen())

    def screen(self):
        e = self.event
        head = Text.assemble((f" step {e.number} ", "bold reverse"), f"   t = {e.time:.3f} s   ",
                             (os.path.basename(self.script), "dim"))
        did = Text.assemble((f"{e.worker} ran task #{e.task_id} {e.task_name}: ", "bold"), (e.action, "cyan"))
        return Group(head, self._lanes(), did, self._source(), self._state(), Text(KEYS, style="dim"))

    def _lanes(self):
        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("worker")
        table.add_column(f"task ids of the last {HISTORY} steps, newest right")
        table.add_column("ran now")
        e = self.event
        for worker, cells in self.lanes.items():
            strip = Text()
            for i, cell in enumerate(cells):
                newest = i == len(cells) - 1
                strip.append(f"{cell:>3}" if cell else "  ·", style="bold yellow" if newest and cell else "")
            now = f"▶ #{e.task_id} {e.task_name}" if worker == e.worker else ""
            table.add_row(worker, strip, now, style="bold yellow" if now else "")
        return table

    def _source(self):
        """The waiting task's source, its line marked: the script's own frame when it has one."""
        if not self.chain:
            return Panel(Text(f"task #{self.event.task_id} {self.event.task_name} has ended"), title="source")
        mine = [f for f in self.chain if f[0] == self.script]
        filename, lineno, function, _ = (mine or self.chain)[-1]
        code = "".join(linecache.getlines(filename))
        return Panel(Syntax(code, "python", line_numbers=True, highlight_lines={lineno},
                            line_range=(max(1, lineno - CONTEXT), lineno + CONTEXT)),
                     title=f"{os.path.basename(filename)}:{lineno} in {function}", title_align="left",
                     subtitle=_calls(self.chain) if len(self.chain) > 1 else None, subtitle_align="left")

    def _state(self):
        e = self.event
        grid = Table(box=None, pad_edge=False, header_style="bold")
        grid.add_column("run queues")
        grid.add_column("timers")
        grid.add_column("I/O waits")
        grid.add_row(
            "\n".join(f"{name}: " + "".join(f"\n  {t}" for t in q) if q else f"{name}: -"
                      for name, q in e.queues.items()),
            "\n".join(f"t={d:.3f}  {who}" for d, who in e.timers) or "-",
            "\n".join(f"fd {fd} {mode}  {who}" for fd, mode, who in e.io) or "-")
        return grid

    def tree(self):
        lines = task_tree(self.stepper.tasks.values())
        return Panel(Text("\n".join(lines) or "no task is alive"), title="task tree", title_align="left")


def _calls(chain) -> str:
    """A frame chain as ``file:line function > ...``, base names only."""
    return " > ".join(f"{os.path.basename(f)}:{n} {fn}" for f, n, fn, _ in chain)
