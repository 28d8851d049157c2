"""The stepping session behind ``genloop step``: one scheduler step per Enter, drawn with rich.

A ``Session`` drives a ``kernel.stepper.Stepper`` and keeps what one
``StepEvent`` does not hold: the recent history of every worker lane and the
breakpoints. Keys are read as lines, from a terminal or a pipe alike, so a
lesson can be scripted (``printf '\\n\\nc\\n' | genloop step 01``) and recorded.
The recorded transcript is plain text, one block per step (the poller's and
the timers' turns get lines of their own), with file names cut to their base
names, so the same script gives the same transcript on any machine.

Every frame is cut to the console's size: the source context, the lines a
step ran, the data and the state lists shrink until it fits (80x24 at least).
"""
import linecache
import os
import select
import time
from collections import deque

from rich.console import Group
from rich.panel import Panel
from rich.segment import Segment, Segments
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from genloop.kernel.introspect import task_tree, user_frames

from .stepdata import frame_data, short

#: Steps of history drawn per worker lane, at most (fewer on a narrow screen).
HISTORY = 16
#: Source lines shown above and below the line a task waits on, at most (fewer on a short screen).
CONTEXT = 4
#: The kernel's turns (polls, timers, ends of blocking calls) before a step drawn on its frame, at most.
KERNEL_TURNS = 2
#: Task names are cut to this many characters in lanes, queues and lists.
NAME_WIDTH = 24
#: Steps a look-ahead takes at most to learn the names of the tasks a run will have (``b NAME``).
LOOKAHEAD = 5000
KEYS = "Enter step  p back  n to poll  + S time  c go  b NAME break  t tree  q quit"
HELP = ("Enter: one step   p: back one step (re-runs to step N-1)   n: run to the poller's next turn   "
        "+ SECONDS: advance virtual time   c: continue   b NAME: break when NAME runs   t: task tree   q: quit")
#: Layouts tried in turn until a frame fits the screen: (source context, rows of ops, data rows, state rows).
LAYOUTS = [(CONTEXT, 6, 3, 8), (3, 4, 2, 6), (2, 3, 2, 4), (1, 2, 1, 3), (1, 1, 1, 2), (0, 1, 1, 1), (0, 1, 0, 1)]


class Session:
    """One stepping session over ``stepper``, for ``script`` (the file its ``main`` came from).

    ``restart``: a function making a fresh stepper of the same program, for
    the back key (the stepper is deterministic, so step N-1 is re-run).
    """

    def __init__(self, stepper, script, console, record=None, restart=None):
        self.stepper = stepper
        self.script = os.path.abspath(script)
        self.console = console
        self.record = record            # a text file for the transcript, or None
        self.restart = restart
        self.lanes = {}                 # worker -> the task ids of its last HISTORY steps (None: idle)
        self.breaks = set()
        self.event = None
        self.chain = []                 # the user's frames of the task that just ran
        self.data = ([], [])            # (locals, kernel objects) of that task's script frames
        self.seen = set()               # names and ids of every task seen so far
        self._future_names = None       # the names a whole run has (look-ahead), once asked

    # -- stepping ------------------------------------------------------------
    def advance(self, quiet=False):
        """Take one step; record it (unless ``quiet``); returns the ``StepEvent`` (None at the end)."""
        event = self.stepper.step()
        if event is None:
            return None
        self.event = event
        task = self.stepper.kernel.tasks.get(event.task_id)      # gone once it has ended
        self.chain = user_frames(task) if task is not None else []
        self.data = frame_data(task, self.script) if task is not None else ([], [])
        self.seen |= {event.task_name, f"#{event.task_id}", str(event.task_id)}
        for worker in self.stepper.workers:
            lane = self.lanes.setdefault(worker, deque([None] * HISTORY, maxlen=HISTORY))
            lane.append(event.task_id if worker == event.worker else None)
        if self.record and not quiet:
            self.record.write(self.transcript_block() + "\n\n")
            self.record.flush()
        return event

    def hits_break(self, event) -> bool:
        return bool(self.breaks & {event.task_name, f"#{event.task_id}", str(event.task_id)})

    def back(self):
        """Re-run a fresh stepper to one step before this one; False if there is none to go to."""
        target = self.stepper.number - 1
        if self.restart is None or target < 1:
            return False
        self.stepper.close()
        self.stepper = self.restart()
        self.lanes = {}
        while self.stepper.number < target:
            self.advance(quiet=True)
        if self.record:
            self.record.write(f"back to step {target}\n\n")
        return True

    def run(self, keys, auto=None, until=None) -> int:
        """Read commands from ``keys`` (lines) until the end or ``q``; the exit status.

        ``auto``: seconds after which a step is taken without a key (a pipe
        that ends then leaves the session stepping by itself). ``until``:
        step without stopping up to that step number.
        """
        going = "until" if until else None      # None, "until", "continue" or "poll"
        self.console.print(Text(f"{os.path.basename(self.script)}: main() is ready to run on Main.  {HELP}"))
        try:
            while True:
                if going:
                    if self.advance() is None:
                        return self.finish()
                    if (going == "continue" and self.hits_break(self.event)) or \
                            (going == "until" and self.stepper.number >= until) or \
                            (going == "poll" and any(k.kind == "poll" for k in self.event.before)):
                        going = None
                        self.show()
                    continue
                command, keys = self._command(keys, auto)
                if command == "":
                    if self.advance() is None:
                        return self.finish()
                    self.show()
                elif command in ("c", "n"):
                    going = "continue" if command == "c" else "poll"
                elif command == "p":
                    if self.back():
                        self.show()
                    else:
                        self.console.print("no step to go back to" if self.restart else "going back needs a restart")
                elif command.startswith("+"):
                    if self._advance_time(command[1:].strip()) is None:
                        return self.finish()
                elif command == "q":
                    self.console.print(f"stopped at step {self.stepper.number}; "
                                       "the tasks still alive are cancelled")
                    return 0
                elif command == "t":
                    self.console.print(self.tree())
                elif command.startswith("b ") and command[2:].strip():
                    self._break(command[2:].strip())
                else:
                    self.console.print(f"unknown key {command!r}; {HELP}")
        except RuntimeError as e:     # the stepper's own verdict, e.g. a deadlock
            self.console.print(Text(f"stopped at step {self.stepper.number}: {e}", style="bold red"))
            return 1
        finally:
            self.stepper.close()

    def _advance_time(self, text):
        """``+ SECONDS``: every step due by then, and the clock moved there; None at the end."""
        try:
            seconds = float(text)
        except ValueError:
            self.console.print("usage: + SECONDS, e.g. + 0.1 (advances virtual time)")
            return False
        if seconds <= 0:
            self.console.print("usage: + SECONDS with SECONDS > 0")
            return False
        start = self.stepper.clock.now()
        taken = 0
        while not self.stepper.main.done and self.stepper.due_by(start + seconds):
            if self.advance() is None:
                break
            taken += 1
        if self.stepper.main.done:
            return None
        self.stepper.advance_clock(start + seconds)
        if self.event is not None and taken:
            self.show()
        self.console.print(f"advanced {seconds:g} s: {taken} steps, t = {self.stepper.clock.now():.3f} s")
        if self.record:
            self.record.write(f"advanced {seconds:g} s to t={self.stepper.clock.now():.3f}\n\n")
        return True

    def _break(self, name):
        if name not in self.seen and not any(name in (t.name, f"#{t.id}", str(t.id))
                                              for t in self.stepper.tasks.values()) \
                and name not in self.future_names():
            names = sorted(n for n in self.future_names() if not n.startswith("#") and not n.isdigit())
            self.console.print(Text(f"no task {name!r} runs in {os.path.basename(self.script)}; "
                                    f"its tasks: {', '.join(short(n, NAME_WIDTH) for n in names)}"))
            return
        self.breaks.add(name)
        self.console.print(f"break when {name} runs (breakpoints: {', '.join(sorted(self.breaks))})")

    def future_names(self) -> set:
        """Every task name and id a whole run has: a look-ahead on a fresh stepper (it is deterministic)."""
        if self._future_names is None:
            names = set(self.seen)
            if self.restart is not None:
                ahead = self.restart()
                try:
                    for _ in range(LOOKAHEAD):
                        event = ahead.step()
                        if event is None:
                            break
                        names |= {event.task_name, f"#{event.task_id}", str(event.task_id)}
                except RuntimeError:
                    pass
                finally:
                    ahead.close()
            self._future_names = names
        return self._future_names

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
        lines = [str(k) for k in e.before]
        lines.append(f"step {e.number}  t={e.time:.3f}  {e.worker}  task #{e.task_id} {e.task_name}")
        if e.ops:
            lines.append("  ran: " + _ran(e.ops))
        lines.append(f"  did: {e.action}")
        if self.chain:
            lines.append("  at: " + _calls(self.chain))
            lines.append(f"      {self.chain[-1][3]}")
        local, objects = self.data
        if local:
            lines.append("  locals: " + ", ".join(local))
        if objects:
            lines.append("  data: " + "; ".join(objects))
        lines.append("  queues: " + "  ".join(f"{name} [{', '.join(q)}]" for name, q in e.queues.items()))
        lines.append("  timers: " + (", ".join(f"{d:.3f} {who}" for d, who in e.timers) or "-"))
        lines.append("  io: " + (", ".join(f"fd {fd} {mode} {who}" for fd, mode, who in e.io) or "-"))
        return "\n".join(lines)

    # -- the screen ----------------------------------------------------------
    def show(self):
        if self.console.is_terminal:
            self.console.clear()
        self.console.print(self.screen(), end="")

    def screen(self):
        """The frame for the latest step, cut to the console's size (one line kept for the prompt)."""
        width, height = self.console.size
        room = max(1, height - 1)
        options = self.console.options.update(width=width, height=None)
        for layout in LAYOUTS:
            lines = self.console.render_lines(self._frame(width, *layout), options, pad=False, new_lines=False)
            if len(lines) <= room:
                break
        lines = lines[:room]
        return Segments([seg for line in lines for seg in (*line, Segment.line())])

    def _frame(self, width, context, op_rows, data_rows, state_rows):
        e = self.event
        head = Text.assemble((f" step {e.number} ", "bold reverse"), f"  t = {e.time:.3f} s  ",
                             (os.path.basename(self.script), "dim"), no_wrap=True, overflow="ellipsis")
        parts = [head]
        if len(e.before) > KERNEL_TURNS:
            parts.append(Text(f"... {len(e.before) - KERNEL_TURNS} earlier turns of the kernel (the transcript has all)",
                              style="magenta", no_wrap=True, overflow="ellipsis"))
        for k in e.before[-KERNEL_TURNS:]:
            parts.append(Text(k.text, style="bold magenta", no_wrap=True, overflow="ellipsis"))
        parts.append(self._lanes(width))
        parts.append(Text.assemble((f"{e.worker} ran task #{e.task_id} {short(e.task_name, NAME_WIDTH)}: ", "bold"),
                                   (e.action, "cyan"), no_wrap=True, overflow="ellipsis"))
        if e.ops and op_rows:
            parts.append(self._ran(op_rows))
        parts.append(self._source(context))
        local, objects = self.data
        rows = [Text.assemble(("data: ", "bold"), "; ".join(objects))] if objects else []
        if local:
            rows.append(Text.assemble(("locals: ", "bold"), ", ".join(local)))
        for row in rows[:data_rows]:
            row.no_wrap, row.overflow = data_rows == 1, "ellipsis"
            parts.append(row)
        parts.append(self._state(state_rows))
        parts.append(Text(KEYS if width >= len(KEYS) else "Enter p n + c b t q", style="dim", no_wrap=True,
                          overflow="ellipsis"))
        return Group(*parts)

    def _ran(self, rows):
        """The lines the step ran and what they did, one per row, the ones with effects kept first."""
        ops = self.event.ops
        if len(ops) > rows:
            return Text.assemble(("ran: ", "bold"), _ran(ops), no_wrap=rows == 1, overflow="ellipsis")
        out = Text()
        for i, (lineno, times, effects) in enumerate(ops):
            source = linecache.getline(self.script, lineno).strip() if lineno else ""
            out.append(f"{'ran ' if i == 0 else '    '}", style="bold")
            out.append(f"{lineno or '':>3}{f' x{times}' if times > 1 else ''} ")
            if effects:
                out.append("-> " + ", ".join(effects) + "  ", style="green")
            out.append(source, style="dim")
            if i < len(ops) - 1:
                out.append("\n")
        out.no_wrap, out.overflow = True, "ellipsis"
        return out

    def _lanes(self, width):
        history = max(4, min(HISTORY, (width - 12 - 20) // 3))
        table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
        table.add_column("worker", no_wrap=True)
        table.add_column(f"last {history} steps" if width < 100 else f"task ids of the last {history} steps, newest right",
                         no_wrap=True)
        table.add_column("ran now", no_wrap=True, overflow="ellipsis")
        e = self.event
        for worker, cells in self.lanes.items():
            strip = Text()
            recent = list(cells)[-history:]
            for i, cell in enumerate(recent):
                newest = i == len(recent) - 1
                strip.append(f"{cell:>3}" if cell else "  ·", style="bold yellow" if newest and cell else "")
            now = f"▶ #{e.task_id} {short(e.task_name, NAME_WIDTH)}" if worker == e.worker else ""
            table.add_row(worker, strip, now, style="bold yellow" if now else "")
        return table

    def _source(self, context):
        """The waiting task's source, its line marked: the script's own frame when it has one."""
        if not self.chain:
            return Text(f"task #{self.event.task_id} {short(self.event.task_name, NAME_WIDTH)} has ended",
                        style="italic")
        mine = [f for f in self.chain if f[0] == self.script]
        filename, lineno, function, _ = (mine or self.chain)[-1]
        code = "".join(linecache.getlines(filename))
        return Panel(Syntax(code, "python", line_numbers=True, highlight_lines={lineno},
                            line_range=(max(1, lineno - context), lineno + context)),
                     title=f"{os.path.basename(filename)}:{lineno} in {function}", title_align="left",
                     subtitle=_calls(self.chain) if len(self.chain) > 1 else None, subtitle_align="left")

    def _state(self, rows):
        e = self.event
        grid = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
        grid.add_column("run queues", no_wrap=True, overflow="ellipsis", ratio=1)
        grid.add_column("timers", no_wrap=True, overflow="ellipsis", ratio=1)
        grid.add_column("I/O waits", no_wrap=True, overflow="ellipsis", ratio=1)
        queues = []
        for name, q in e.queues.items():
            queues.append(f"{name}: " + (", ".join(short(t, NAME_WIDTH // 2 + 4) for t in q) if q else "-"))
        timers = [f"t={d:.3f}  {short(who, NAME_WIDTH)}" for d, who in e.timers] or ["-"]
        io = [f"fd {fd} {mode}  {short(who, NAME_WIDTH)}" for fd, mode, who in e.io] or ["-"]
        grid.add_row(*("\n".join(_cut(col, rows)) for col in (queues, timers, io)))
        return grid

    def tree(self):
        """The task tree, cut to the screen: long names shortened, a line per task."""
        width, height = self.console.size
        lines = [short(line, width - 4) for line in task_tree(self.stepper.tasks.values())]
        return Panel(Text("\n".join(_cut(lines, max(1, height - 4))) or "no task is alive", no_wrap=True,
                          overflow="ellipsis"), title="task tree", title_align="left")


def _cut(lines, rows) -> list:
    """At most ``rows`` of ``lines``, the last one saying how many were left out."""
    if len(lines) <= rows:
        return lines
    return [*lines[:rows - 1], f"... {len(lines) - rows + 1} more"]


def _ran(ops) -> str:
    """A step's ops on one line: ``25, 26 -> spawns #2 ping, 27 -> spawns #3 pong, 28, 29``."""
    words = []
    for lineno, times, effects in ops:
        word = "..." if lineno is None and not effects else (str(lineno) if lineno else "")
        if times > 1:
            word += f" x{times}"
        if effects:
            word = (word + " -> " if word else "-> ") + ", ".join(effects)
        words.append(word)
    return ", ".join(words)


def _calls(chain) -> str:
    """A frame chain as ``file:line function > ...``, base names only."""
    return " > ".join(f"{os.path.basename(f)}:{n} {fn}" for f, n, fn, _ in chain)
