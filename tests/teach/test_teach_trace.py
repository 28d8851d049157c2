"""ChromeTracer's Trace Event Format, ``genloop trace``, and the HTML timeline in Chromium."""
import json
import re
import shutil
import subprocess
from collections import Counter

import pytest

from genloop.demos import timeline
from genloop.demos.teach_cli import load_main
from genloop.kernel import ChromeTracer, run
from tests.teach.teach_helpers import genloop, lesson

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def traced(tmp_path, stem):
    """Run lesson ``stem`` under a ChromeTracer; the events its file holds."""
    out = tmp_path / f"{stem}.json"
    with ChromeTracer(out) as tracer:
        run(load_main(lesson(stem)), instruments=[tracer])
    return json.loads(out.read_text())["traceEvents"]


def tracks(events):
    """tid -> track name, checking the file's structure on the way."""
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert len(set(names.values())) == len(names)
    for e in events:
        if e["ph"] == "X":
            assert {"name", "ts", "dur", "pid", "tid"} <= e.keys() and e["dur"] >= 0, e
        if e["ph"] != "M":
            assert e["tid"] in names, f"{e} is on a track with no thread_name"
    starts = Counter(e["id"] for e in events if e["ph"] == "s")
    ends = Counter(e["id"] for e in events if e["ph"] == "f")
    assert starts == ends and set(starts.values()) <= {1}, "every flow has exactly one start and one end"
    return names


def test_trace_has_a_track_per_worker_and_arrows_across_threads(tmp_path):
    events = traced(tmp_path, "05_with_context")
    names = tracks(events)
    slices = [e for e in events if e["ph"] == "X"]
    assert {"Main", "IO-1", "Default-1"} <= set(names.values())
    assert {names[e["tid"]] for e in slices if e["name"] == "read_config"} == {"IO-1"}
    assert {names[e["tid"]] for e in slices if e["name"] == "crunch"} == {"Default-1"}
    assert {names[e["tid"]] for e in slices if e["name"] == "main"} == {"Main"}
    assert any(e["args"]["trap"] == "runs read_config on IO and waits" for e in slices if e["name"] == "main")
    # Main spawns the call on IO (arrow out) and the call's end wakes main (arrow back).
    ends = {e["id"]: e for e in events if e["ph"] == "f"}
    hops = {(names[s["tid"]], names[ends[s["id"]]["tid"]]) for s in events if s["ph"] == "s"}
    assert {("Main", "IO-1"), ("IO-1", "Main"), ("Main", "Default-1"), ("Default-1", "Main")} <= hops
    # each arrow ends where a step of the woken task starts, on the woken task's track
    starts = {(e["tid"], e["ts"]) for e in slices}
    assert all((f["tid"], f["ts"]) in starts for f in ends.values())


def test_trace_shows_the_poller_waiting_on_main(tmp_path):
    events = traced(tmp_path, "04_echo_server")
    names = tracks(events)
    polls = [e for e in events if e["ph"] == "X" and e["cat"] == "poll"]
    assert polls and {names[e["tid"]] for e in polls} == {"Main"}
    assert sum(e["args"]["woken"] for e in polls) > 0


def test_trace_marks_a_slow_step(tmp_path):
    events = traced(tmp_path, "06_blocking_call")
    names = tracks(events)
    slow = [e for e in events if e["ph"] == "i"]
    source = lesson("06_blocking_call").read_text().splitlines()
    line = next(n for n, text in enumerate(source, 1) if text.strip().startswith("time.sleep(BLOCK)"))
    assert slow and names[slow[0]["tid"]] == "Main"
    assert slow[0]["args"]["at"].endswith(f"06_blocking_call.py:{line}")


def test_genloop_trace_writes_the_json_and_a_self_contained_page(tmp_path):
    out, page = tmp_path / "t.json", tmp_path / "t.html"
    r = genloop("trace", "05", "--out", out, "--html", page)
    assert r.returncode == 0, r.stderr
    assert "main returned" in r.stdout and f"wrote {out}" in r.stdout
    events = json.loads(out.read_text())["traceEvents"]
    tracks(events)
    html = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the page must need no network"
    assert '"traceEvents"' in html


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_html_timeline_draws_lanes_and_slices_in_chromium(tmp_path):
    events = traced(tmp_path, "05_with_context")
    names = tracks(events)
    page = tmp_path / "timeline.html"
    page.write_text(timeline.render({"traceEvents": events}, "05 </script> hops"))
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=30).stdout
    lanes = re.findall(r'<g class="lane" data-tid="\d+" data-name="([^"]*)"', dom)
    assert sorted(lanes) == sorted(names.values())
    assert dom.count('<rect class="slice') == sum(e["ph"] == "X" for e in events)
    assert dom.count('<path class="flow"') == sum(e["ph"] == "s" for e in events)
    assert "<title>task #" in dom                     # hover details


def test_mains_wait_until_woken_is_kept(tmp_path):
    """Main polls with no timeout while read_config runs on IO; the IO thread's end wakes it (woken: 0)."""
    events = traced(tmp_path, "05_with_context")
    names = tracks(events)
    waits = [e for e in events if e["ph"] == "X" and e["cat"] == "poll" and e["args"]["timeout"] is None]
    assert waits and {names[e["tid"]] for e in waits} == {"Main"}
    call = next(e for e in events if e["ph"] == "X" and e["name"] == "read_config" and e["cat"] == "step")
    assert any(w["ts"] <= call["ts"] + call["dur"] and w["ts"] + w["dur"] >= call["ts"] + call["dur"] * 0.5
               for w in waits), "Main's wait does not cover the call it waited for"
    assert {"ph": "M", "name": "process_name", "pid": events[0]["pid"], "args": {"name": "genloop"}} in events


def test_every_task_has_a_state_track(tmp_path):
    events = traced(tmp_path, "03_producer_consumer")
    names = tracks(events)
    states = {}
    for e in events:
        if e["ph"] == "X" and e["cat"] == "state":
            states.setdefault(names[e["tid"]], []).append(e)
    assert set(states) == {"task #1 main", "task #2 consumer"}
    for track, slices in states.items():
        slices.sort(key=lambda e: e["ts"])
        for a, b in zip(slices, slices[1:]):
            assert a["ts"] + a["dur"] <= b["ts"] + 0.01, f"{track}: {a} overlaps {b}"
        assert {e["name"].split(":")[0] for e in slices} <= {"running", "ready", "waiting"}
    consumer = {e["name"] for e in states["task #2 consumer"]}
    assert {"running", "ready", "waiting: sleeps 0.1 s"} <= consumer
    assert "waiting: waits to put into a full Queue" in {e["name"] for e in states["task #1 main"]}
    # each step is a "running" slice of its task, at the same time
    running = {(e["args"]["task"], e["ts"]) for e in events if e.get("cat") == "state" and e["name"] == "running"}
    steps = {(e["args"]["task"], e["ts"]) for e in events if e.get("cat") == "step"}
    assert steps <= running
    sleeps = [e for e in states["task #2 consumer"] if e["name"] == "waiting: sleeps 0.1 s"]
    assert all(0.09e6 <= e["dur"] <= 0.5e6 for e in sleeps)


def test_each_step_carries_its_threads_cpu_time(tmp_path):
    events = traced(tmp_path, "06_blocking_call")
    names = tracks(events)
    steps = [e for e in events if e["ph"] == "X" and e["cat"] == "step"]
    assert all(0 <= e["args"]["cpu_us"] <= e["dur"] + 1000 for e in steps)
    offloaded = next(e for e in steps if names[e["tid"]].startswith("IO-"))
    assert offloaded["dur"] >= 0.19e6 and offloaded["args"]["cpu_us"] < offloaded["dur"] / 4   # asleep, not computing
