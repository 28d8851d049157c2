"""``genloop step``: the same lesson gives the same transcript, driven from a pipe or a terminal."""
import io
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest
from rich.console import Console

from genloop.demos.stepview import Session
from genloop.demos.teach_cli import load_main
from genloop.kernel.stepper import Stepper
from tests.teach.teach_helpers import DETERMINISTIC, GOLDEN, ROOT, genloop, lesson


def record(stem, keys="c\n"):
    """Step lesson ``stem`` in-process with ``keys``; (exit status, transcript)."""
    path = lesson(stem)
    transcript = io.StringIO()
    console = Console(file=io.StringIO(), width=110, markup=False)
    status = Session(Stepper(load_main(path)), path, console, record=transcript).run(io.StringIO(keys))
    return status, transcript.getvalue()


@pytest.mark.parametrize("stem", DETERMINISTIC)
def test_transcript_is_the_golden_one_run_after_run(stem):
    status, transcript = record(stem)
    golden = GOLDEN / f"{stem}.txt"
    if os.environ.get("GENLOOP_UPDATE_GOLDEN"):
        golden.write_text(transcript)
    assert status == 0
    assert transcript == golden.read_text()
    assert record(stem)[1] == transcript
    assert str(ROOT) not in transcript          # base names only: the same on any machine


def test_step_through_a_pipe_to_the_end(tmp_path):
    transcript = tmp_path / "ping.txt"
    r = genloop("step", "01", "--record", transcript, input="\n\nt\nb pong\nc\nc\nc\nc\n")
    assert r.returncode == 0, r.stderr
    assert " step 2 " in r.stdout and "task tree" in r.stdout and "#3 pong [ready]" in r.stdout
    assert "break when pong runs" in r.stdout
    assert r.stdout.count("Main ran task #3 pong") == 3      # each `c` stopped where pong ran
    assert "end: main returned 'serve -> ping -> pong -> ping -> pong -> ping -> pong' after 8 steps" in r.stdout
    assert transcript.read_text() == (GOLDEN / "01_ping_pong.txt").read_text()


def test_step_until_then_quit():
    r = genloop("step", "03", "--until", 5, input="q\n")
    assert r.returncode == 0, r.stderr
    assert " step 5 " in r.stdout and " step 4 " not in r.stdout
    assert "stopped at step 5" in r.stdout
    assert "waits to put into a full Queue" in r.stdout or "sleeps 0.1 s" in r.stdout


def test_end_of_input_quits_and_auto_steps_on_by_itself():
    r = genloop("step", "02", input="\n")
    assert r.returncode == 0 and "stopped at step 1" in r.stdout and "end:" not in r.stdout
    r = genloop("step", "02", "--auto", 0, input="")
    assert r.returncode == 0, r.stderr
    assert "end: main returned [1, 2, 3, 4, 5] after 12 steps, t=0.500" in r.stdout


def test_a_lesson_on_real_sockets_steps_to_the_end(tmp_path):
    transcript = tmp_path / "echo.txt"
    r = genloop("step", "04", "--record", transcript, input="c\n")
    assert r.returncode == 0, r.stderr
    assert "end: main returned ['one two', 'uno dos']" in r.stdout
    assert "waits until fd" in transcript.read_text()


def test_a_script_by_path_and_a_deadlock_said_plainly(tmp_path):
    script = tmp_path / "stuck.py"
    script.write_text("from genloop import Event\n\ndef main():\n    yield from Event().wait()\n")
    r = genloop("step", script, input="c\n")
    assert r.returncode == 1
    assert "stopped at step 1: deadlock" in r.stdout and "Traceback" not in r.stderr


def test_bad_arguments_get_a_clear_message():
    r = genloop("step", "no-such-lesson")
    assert r.returncode == 2 and "01_ping_pong" in r.stderr
    r = genloop("step", "01", "--threads", "Default=many")
    assert r.returncode == 2 and "DISPATCHER=THREADS" in r.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_step_in_tmux_draws_the_lanes_and_the_step_counter():
    session = f"gl-step-{uuid.uuid4().hex[:8]}"

    def tmux(*args):        # a server of its own: no race with any other tmux user
        return subprocess.run(["tmux", "-L", session, *args], capture_output=True, text=True, timeout=5)

    def screen_shows(text, seconds=4.0):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            screen = tmux("capture-pane", "-p", "-t", session).stdout
            if text in screen:
                return screen
            time.sleep(0.05)      # polling the pane, bounded by the deadline
        raise AssertionError(f"{text!r} never appeared; the screen:\n{screen}")

    command = f"{sys.executable} -m genloop.demos.cli step 03"
    assert tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "50", "-c", str(ROOT), command).returncode == 0
    try:
        screen_shows("is ready to run on Main")
        for _ in range(3):
            tmux("send-keys", "-t", session, "Enter")
        screen = screen_shows(" step 3 ")
        assert "worker" in screen and "Main" in screen and "Default-1" in screen and "Default-2" in screen
        assert "❱" in screen                       # the source line the task waits on
        tmux("send-keys", "-t", session, "q", "Enter")
        deadline = time.monotonic() + 4
        while tmux("has-session", "-t", session).returncode == 0:
            assert time.monotonic() < deadline, "genloop step did not quit on q"
            time.sleep(0.05)
    finally:
        tmux("kill-server")
