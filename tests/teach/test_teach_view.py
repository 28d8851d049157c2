"""``genloop step``'s view: the kernel's own turns, every operation of a step, the data, the screen size, time travel."""
import io
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid

import pytest
from rich.console import Console

from genloop.demos.stepdata import describe_object, short
from genloop.demos.stepview import KEYS, Session
from genloop.demos.teach_cli import lessons, load_main
from genloop.kernel import Event, Lock, Queue
from genloop.kernel.stepper import Stepper
from tests.teach.teach_helpers import ROOT, genloop, lesson


def session(path, width=110, height=200, record=None):
    main = load_main(path)
    console = Console(file=io.StringIO(), width=width, height=height, markup=False, highlight=False, record=True)
    return Session(Stepper(main), path, console, record=record, restart=lambda: Stepper(main))


def frames(path, width, height):
    """Every frame of the lesson at ``path``, drawn at width x height, as lists of lines."""
    s = session(path, width, height)
    out = []
    try:
        while s.advance() is not None:
            s.show()
            out.append(s.console.export_text(clear=True).rstrip("\n").split("\n"))
    finally:
        s.stepper.close()
    return out


def transcript(stem, keys="c\n"):
    record = io.StringIO()
    s = session(lesson(stem), record=record)
    status = s.run(io.StringIO(keys))
    return status, record.getvalue(), s.console.export_text()


@pytest.mark.parametrize("path", lessons(), ids=lambda p: p.stem)
def test_every_frame_fits_80x24_uncut(path):
    drawn = frames(path, 80, 24)
    assert drawn
    for number, lines in enumerate(drawn, 1):
        assert len(lines) <= 23, f"frame {number} has {len(lines)} lines"          # one left for the prompt
        assert lines[0].startswith(f" step {number} "), lines[0]                   # the step and clock stay on top
        assert lines[-1].strip() == KEYS, f"frame {number} was cut: {lines[-3:]}"
        assert max(map(len, lines)) <= 80


def test_the_room_at_120x40_is_used():
    first = frames(lesson("01_ping_pong"), 120, 40)[0]
    assert len(first) <= 39
    text = "\n".join(first)
    # each line the step ran, with its source and what it did; nine lines of source around the waiting one
    assert re.search(r"26 -> spawns #2 ping +ping = yield from spawn\(player", text)
    assert re.search(r"28 yield from to_ping\.put\(\[\"serve\"\]\)", text)
    assert sum(bool(re.match(r"│ (❱| ) +\d+ ", line)) for line in first) == 9
    small = "\n".join(frames(lesson("01_ping_pong"), 80, 24)[0])
    assert "ran: 25, 26 -> spawns #2 ping, 27 -> spawns #3 pong, 28, 29" in small


def test_one_step_shows_every_operation_not_only_its_last_trap():
    _, record, _ = transcript("01_ping_pong")
    first = record.split("\n\n")[0]
    assert "ran: 25, 26 -> spawns #2 ping, 27 -> spawns #3 pong, 28, 29" in first
    assert "did: waits for task #2 (ping)" in first
    assert "data: to_ping: Queue [['serve']]; to_pong: Queue []" in first      # what the put at line 28 did


def test_the_poller_turn_is_an_event_of_its_own_naming_who_it_woke():
    status, record, _ = transcript("04_echo_server")
    assert status == 0
    polls = re.findall(r"^poll  t=\d+\.\d{3}  poll \(until woken\) -> (fds? [\d, ]+ \w+(?:, fds? [\d, ]+ \w+)*) "
                       r"-> wakes (#\d+ [^\n]+)$", record, re.M)
    assert len(polls) >= 3
    for ready, woken in polls:
        ids = re.findall(r"#(\d+)", woken)
        fds = re.findall(r"\d+", ready)
        assert len(ids) == len(fds)
    # a poll's block is followed by a step of one of the tasks it woke
    block = next(b for b in record.split("\n\n") if b.startswith("poll "))
    woken = re.findall(r"#(\d+)", block.splitlines()[0].split("wakes")[1])
    assert re.search(r"^step \d+ .* task #(\d+)", block, re.M).group(1) in woken


def test_timers_and_cross_thread_wake_ups_are_named():
    _, record, _ = transcript("02_sleep_sort")
    assert "timer t=0.100  clock 0.000 -> 0.100, timer fires -> wakes #3 sleep-1\nstep " in record
    _, record, _ = transcript("03_producer_consumer")
    # the consumer on Default-1 wakes the producer parked on Main: a wake-up across threads
    assert re.search(r"step 2  t=0\.000  Default-1  task #2 consumer\n  ran: .*wakes #1 main on Main", record)
    assert "data: q: Queue of 2 [0, 1], putters #1 main" in record


def test_data_of_events_locks_and_queues_in_words():
    event, lock, q = Event(), Lock(), Queue(maxsize=3)
    assert describe_object(event) == "Event clear"
    event.set()
    assert describe_object(event) == "Event set"
    assert describe_object(lock) == "Lock free"
    q.put_nowait("x" * 100)
    assert describe_object(q).startswith("Queue of 3 ['xxxx") and len(describe_object(q)) < 50
    assert describe_object(object()) is None
    assert short("<function search at 0x7f00deadbeef>", 40) == "<function search>"
    assert short("a" * 30, 10) == "a" * 9 + "…"


def test_back_reruns_to_the_step_before():
    s = session(lesson("03_producer_consumer"), 110, 60)
    try:
        for _ in range(4):
            s.advance()
        s.show()
        s.console.export_text(clear=True)
        s.advance()
        s.show()
        fifth = s.console.export_text(clear=True)
        assert s.back() and s.stepper.number == 4
        s.show()
        assert s.console.export_text(clear=True) != fifth
        s.advance()
        s.show()
        assert s.console.export_text(clear=True) == fifth      # deterministic: the same step 5 again
    finally:
        s.stepper.close()
    status, record, screen = transcript("01_ping_pong", "\n\n\np\nq\n")
    assert status == 0 and "back to step 2" in record and screen.count(" step 2 ") == 2


def test_advance_time_and_run_to_the_next_poll():
    status, record, screen = transcript("02_sleep_sort", "\n+ 0.25\nq\n")
    assert "advanced 0.25 s: " in screen and "t = 0.250 s" in screen
    assert "advanced 0.25 s to t=0.250" in record
    woke = re.findall(r"step \d+  t=(\d\.\d+)  Main  task #\d+ (sleep-\d)\n  ran: 19", record)
    assert [name for _, name in woke] == ["sleep-1", "sleep-2"] and all(float(t) <= 0.25 for t, _ in woke)
    assert "stopped at step" in screen
    status, record, screen = transcript("04_echo_server", "n\nq\n")
    assert status == 0
    last = record.strip().split("\n\n")[-1]
    assert last.startswith("poll ") and "-> wakes #" in last        # stopped at the poller's turn
    assert re.search(r"poll \(until woken\) -> fds? ", screen)


def test_break_on_a_task_that_never_runs_says_so():
    status, _, screen = transcript("01_ping_pong", "b nosuch\nb pong\nq\n")
    assert "no task 'nosuch' runs in 01_ping_pong.py; its tasks: main, ping, pong" in screen
    assert "break when pong runs (breakpoints: pong)" in screen        # not spawned yet, but it will run


def test_a_plain_function_main_gets_one_line(tmp_path):
    script = tmp_path / "plain.py"
    script.write_text("def main():\n    return 42\n")
    r = genloop("step", script)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "not a generator" in r.stderr


def test_an_unconfined_task_resumes_where_the_real_run_resumes_it():
    with Stepper(load_main(lesson("08_unconfined"))) as stepper:
        lanes = [(e.worker, e.task_name) for e in stepper]
    drifter = [worker for worker, name in lanes if name == "drifter"]
    assert drifter[0].startswith("Default-") and drifter[1] == "Main"     # woken by a timer: on Main


LONG_NAMES = '''
import functools
from genloop.kernel import sleep, spawn


class Backends:
    pass


def search(backends, n):
    yield from sleep(0.1 * n)


def main():
    tasks = []
    for n in range(40):
        fn = functools.partial(search, Backends())
        tasks.append((yield from spawn(fn, n)))
    for t in tasks:
        yield from t.join()
'''


def test_long_names_are_shortened_and_the_tree_stays_in_the_frame(tmp_path):
    script = tmp_path / "long_names.py"
    script.write_text(LONG_NAMES)
    s = session(script, 80, 24)
    try:
        s.advance()
        s.show()
        lines = s.console.export_text(clear=True).rstrip("\n").split("\n")
        assert len(lines) <= 23 and max(map(len, lines)) <= 80 and lines[-1].strip() == KEYS
        assert "0x" not in "\n".join(lines)
        s.console.print(s.tree())
        tree = s.console.export_text(clear=True).rstrip("\n").split("\n")
        assert len(tree) <= 23 and max(map(len, tree)) <= 80
        assert "more" in tree[-2] and "0x" not in "\n".join(tree)
    finally:
        s.stepper.close()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (Debian: apt-get install tmux)")
@pytest.mark.parametrize("path", lessons(), ids=lambda p: p.stem)
def test_every_frame_fits_a_real_80x24_terminal(path):
    """Drive the lesson in tmux at 80x24, one Enter per frame: the step number on top, the keys at the bottom."""
    name = f"gl-fit-{uuid.uuid4().hex[:8]}"

    def tmux(*args):        # a server of its own: no race with any other tmux user
        return subprocess.run(["tmux", "-L", name, *args], capture_output=True, text=True, timeout=5)

    def screen_when(ready, seconds=10.0):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            screen = tmux("capture-pane", "-p", "-t", name).stdout
            if ready(screen):
                return screen
            time.sleep(0.01)      # polling the pane, bounded by the deadline
        raise AssertionError(f"the frame never came; the screen:\n{screen}")

    def prompted(screen):     # the prompt on a line of its own: the frame above it is complete
        return screen.rstrip().split("\n")[-1] == ">"

    command = f"{sys.executable} -m genloop.demos.cli step {path}"
    assert tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24", "-c", str(ROOT), command).returncode == 0
    try:
        screen_when(lambda s: "is ready to run on Main" in s)
        number = 0
        while True:
            number += 1
            tmux("send-keys", "-t", name, "Enter")
            # drawn: this step's frame (or any other screen) with the prompt under it, or the end
            screen = screen_when(lambda s: "end: main" in s or (f" step {number} " in s and prompted(s)))
            if "end: main" in screen:
                break
            lines = screen.rstrip().split("\n")
            assert len(lines) <= 24 and max(map(len, lines)) <= 80
            assert lines[0].startswith(f" step {number} "), f"frame {number} scrolled off the top:\n{screen}"
            assert KEYS in lines[-2], f"frame {number} is cut:\n{screen}"
        assert number > 4
    finally:
        tmux("kill-server")


def test_blocking_time_is_simulated_on_its_own_worker_only():
    status, record, _ = transcript("06_blocking_call")
    assert status == 0
    # time.sleep on Main: Main's lane is busy 0.2 s of virtual time, and the ticker waits for it
    assert re.search(r"step 4  t=0\.100  Main  task #1 main\n  ran: .*blocks this worker 0\.2 s \(time\.sleep, simulated\)",
                     record)
    assert "block t=0.300  Main: the blocking call ends\n" in record
    # the same call on IO-1: Main's ticker goes on at 0.45, 0.5, 0.55 meanwhile
    assert "block t=0.600  IO-1: the blocking call ends -> wakes #1 main" in record
    ticks = [float(t) for t in re.findall(r"step \d+  t=(\d\.\d+)  Main  task #2 ticker", record)]
    assert {0.45, 0.5, 0.55} <= set(ticks) and not any(0.1 < t < 0.3 for t in ticks)
    assert time.sleep.__module__ == "time" and time.monotonic.__module__ == "time"   # the real ones again


def test_simulated_time_belongs_to_the_stepping_thread_alone():
    from genloop.kernel.simtime import SimClock, blocking_simulated

    clock = SimClock()
    seen = {}

    def other():
        started = time.monotonic()
        time.sleep(0.01)
        seen["other"] = time.monotonic() - started

    with blocking_simulated(clock):
        time.sleep(5)                       # simulated: no real wait
        assert time.monotonic() == clock.now() == 5.0
        helper = threading.Thread(target=other)
        helper.start()
        helper.join(5)
    assert 0.005 < seen["other"] < 2 and clock.now() == 0.0
