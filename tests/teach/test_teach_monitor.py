"""The monitor: its commands against a live kernel, even while Main is stuck; loopback only."""
import functools
import queue
import re
import socket
import threading
import time

import pytest

from genloop.kernel import Cancelled, Dispatchers, Future, Queue, current_kernel, run, sleep, spawn, with_context
from genloop.kernel.monitor import PROMPT, Monitor, check_loopback, connect_monitor
from genloop.net import serve_tcp
from tests.teach.teach_helpers import genloop


def talk(address, *commands, seconds=3.0):
    """Send each command to the monitor at ``address`` (``Monitor.address``); the answers, in order."""
    with connect_monitor(**address, timeout=seconds) as conn:
        buffer = b""

        def answer():
            nonlocal buffer
            while PROMPT not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return buffer.decode()
                buffer += chunk
            text, _, buffer = buffer.partition(PROMPT)
            return text.decode()

        answer()                              # the greeting
        out = []
        for command in commands:
            conn.sendall(command.encode() + b"\n")
            out.append(answer())
        return out


def until(condition, seconds=3.0):
    """Let other tasks run until ``condition()`` holds (bounded)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        yield


def napper():
    yield from sleep(60)


def test_monitor_commands_against_a_live_kernel():
    def main():
        port = current_kernel().monitor.address
        nap = yield from spawn(napper, name="napper")
        getter = yield from spawn(Queue().get, name="getter", dispatcher=Dispatchers.Default)
        yield from until(lambda: nap.state == getter.state == "waiting")
        answers = yield from with_context(
            Dispatchers.IO, talk, port, "ps", f"where {nap.id}", "tree", "stats", f"cancel {nap.id}",
            "where 999", "where", "bogus", "help", "quit")
        with pytest.raises(Cancelled):
            yield from nap.join()
        getter.cancel()
        yield from getter.wait_done()
        return nap.id, answers

    nap_id, (ps, where, tree, stats, cancel, missing, usage, bogus, help_, bye) = run(main, monitor=0)
    rows = {line.split()[1]: line for line in ps.splitlines()[2:]}    # by name, after main (#1)
    assert ps.splitlines()[0].split() == ["id", "name", "state", "dispatcher", "steps", "waits", "for", "for"]
    assert "waiting" in rows["napper"] and "Main" in rows["napper"] and "sleeps 60 s" in rows["napper"]
    assert rows["napper"].rstrip().endswith(" s")                              # for how long
    assert "Default" in rows["getter"] and "waits to get from an empty Queue" in rows["getter"]
    assert ps.splitlines()[1].startswith("1 ") and "runs talk on IO and waits" in ps.splitlines()[1]
    assert f"task #{nap_id} napper: waiting, sleeps 60 s" in where
    assert "test_teach_monitor.py:" in where and "in napper" in where and "yield from sleep(60)" in where
    assert tree.splitlines()[0].startswith("#1 ") and "[waiting: runs talk on IO and waits]" in tree
    assert f"    #{nap_id} napper [waiting: sleeps 60 s]" in tree.splitlines()
    assert all(name in stats for name in ("Main ", "Default ", "IO ", "poller waits:", "slow steps on Main: 0"))
    assert cancel.strip() == f"cancel requested for task #{nap_id} napper"
    assert "no live task #999" in missing and usage.startswith("usage: where ID")
    assert "unknown command 'bogus'" in bogus and "cancel ID" in help_ and bye.strip() == "bye"


def test_monitor_answers_while_main_is_blocked():
    blocked, release = threading.Event(), threading.Event()
    seen = {}

    def client(port):
        blocked.wait(3)
        started = time.monotonic()
        seen["ps"] = talk(port, "ps")[0]
        seen["took"] = time.monotonic() - started
        deadline = time.monotonic() + 3
        while "slow steps on Main: 1" not in (stats := talk(port, "stats")[0]) and time.monotonic() < deadline:
            pass
        seen["stats"] = stats
        release.set()

    def main():
        helper = threading.Thread(target=client, args=(current_kernel().monitor.address,))
        helper.start()
        blocked.set()
        answered = release.wait(4)        # blocks Main: no step, no poll, no timer until it returns
        helper.join()
        return answered
        yield  # pragma: no cover - a generator, so it runs as main

    assert run(main, monitor=0) is True, "the monitor did not answer while Main was blocked"
    main_row = seen["ps"].splitlines()[1]
    assert main_row.startswith("1 ")
    assert "running" in main_row and seen["took"] < 2
    assert "slow steps on Main: 1" in seen["stats"]


def test_monitor_refuses_any_address_but_loopback(monkeypatch):
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        with pytest.raises(ValueError, match="loopback only"):
            check_loopback(host)
    for host in ("127.0.0.1", "::1", "localhost"):
        check_loopback(host)
    with pytest.raises(ValueError, match="loopback only"):
        Monitor(None, "0.0.0.0", 0)
    monkeypatch.setenv("GENLOOP_MONITOR", "1")
    monkeypatch.setenv("GENLOOP_MONITOR_HOST", "0.0.0.0")
    ran = []

    def main():
        ran.append(True)
        yield

    with pytest.raises(ValueError, match="loopback only"):
        run(main)
    assert not ran


def test_environment_starts_the_monitor_and_run_stops_it(monkeypatch):
    def main():
        monitor = current_kernel().monitor
        return monitor and monitor.port
        yield  # pragma: no cover

    assert run(main) is None                               # off unless asked for
    monkeypatch.setenv("GENLOOP_MONITOR", "1")
    monkeypatch.setenv("GENLOOP_MONITOR_PORT", "0")
    port = run(main)
    assert port
    with pytest.raises(ConnectionRefusedError):            # gone with run(); the thread too (fixture)
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_genloop_monitor_talks_to_a_running_program():
    done = Future()
    ports = queue.Queue()

    def main():
        ports.put(current_kernel().monitor.port)
        yield from done.wait()

    program = threading.Thread(target=run, args=(main,), kwargs={"monitor": 0})
    program.start()
    try:
        port = ports.get(timeout=3)
        r = genloop("monitor", "--port", port, input="ps\ntree\nquit\n")
    finally:
        done.set_result(None)
        program.join(5)
    assert r.returncode == 0, r.stderr
    assert "genloop> ps\n" in r.stdout and "genloop> tree\n#1 " in r.stdout
    assert "main [waiting: waits for a Future]" in r.stdout
    assert r.stdout.rstrip().endswith("bye")
    r = genloop("monitor", "--port", port)
    assert r.returncode == 1 and "no monitor answers" in r.stderr


def _blocked_deep_inside(entered, release):
    entered.set()
    release.wait(5)                           # the innermost line: where the worker is now
    return "done"


def _blocking_helper(entered, release):
    return _blocked_deep_inside(entered, release)


def _worker_task(entered, release):
    result = _blocking_helper(entered, release)
    yield
    return result


def test_where_on_a_running_task_shows_its_threads_whole_stack():
    entered, release = threading.Event(), threading.Event()

    def main():
        address = current_kernel().monitor.address
        busy = yield from spawn(_worker_task, entered, release, dispatcher=Dispatchers.Default, name="busy")
        entered.wait(3)
        try:
            where, = yield from with_context(Dispatchers.IO, talk, address, f"where {busy.id}")
        finally:
            release.set()
        yield from busy.join()
        return where

    where = run(main, monitor=0)
    head, *frames = where.splitlines()
    assert re.match(r"task #\d+ busy: running on genloop-Default-\d; its whole stack now", head), head
    text = "\n".join(frames)
    for function in ("_worker_task", "_blocking_helper", "_blocked_deep_inside"):
        assert f"in {function}" in text
    assert "release.wait(5)" in text and text.index("in _worker_task") < text.index("in _blocked_deep_inside")


def test_cancel_answers_name_the_consequence():
    got = {}

    def main():
        address = current_kernel().monitor.address
        server = yield from serve_tcp(lambda stream: stream.close(), "127.0.0.1", 0)
        accept = next(t for t in current_kernel().tasks.values() if t.name.startswith("tcp-accept"))
        got["port"] = server.port
        client = threading.Thread(target=lambda: got.update(answers=talk(address, f"cancel {accept.id}", "cancel 1")))
        client.start()
        got["client"] = client
        yield from sleep(10)                  # the cancel of main lands here

    with pytest.raises(Cancelled):
        run(main, monitor=0)
    got["client"].join(5)
    accepting, main_task = got["answers"]
    assert "no longer accepts connections (the open ones go on)" in accepting and str(got["port"]) in accepting
    assert main_task.strip().endswith("main: the main task, so the program ends once it has unwound")


def test_a_cancelled_main_is_one_line_under_genloop_trace(tmp_path):
    script = tmp_path / "quits.py"
    script.write_text("from genloop.kernel import current_task, sleep\n\n\ndef main():\n"
                      "    (yield from current_task()).cancel()\n    yield from sleep(1)\n")
    r = genloop("trace", script, "--out", tmp_path / "t.json")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "main was cancelled (by the monitor's cancel, or by itself)"


class _Backends:
    pass


def _lookup(backends, release):
    release.wait(5)


def test_ps_shortens_long_names_and_waits():
    release = threading.Event()

    def caller():
        yield from with_context(Dispatchers.IO, functools.partial(_lookup, _Backends(), release))

    def main():
        address = current_kernel().monitor.address
        task = yield from spawn(caller, name="caller-with-a-name-far-too-long-for-any-table-at-all")
        yield from until(lambda: task.state == "waiting")
        try:
            ps, = yield from with_context(Dispatchers.Default, talk, address, "ps")
        finally:
            release.set()
        yield from task.join()
        return ps

    ps = run(main, monitor=0)
    row = next(line for line in ps.splitlines() if "caller-with" in line)
    assert "runs functools.partial(<function _lookup>, <tests.teach.tes…  " in row, row
    assert "caller-with-a-name-far-too-long-for-any…" in row and "0x" not in ps
    assert max(map(len, ps.splitlines())) < 150
