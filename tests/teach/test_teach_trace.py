"""ChromeTracer's Trace Event Format, ``genloop trace``, and the HTML timeline in Chromium."""
import json
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter

import pytest

from genloop.demos import timeline
from genloop.demos.teach_cli import load_main
from genloop.kernel import ChromeTracer, run
from tests.teach.teach_helpers import ROOT, genloop, lesson, png_pixels

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


#: The legend's swatches, as the page's stylesheet colours them: (r, g, b).
SWATCHES = {"poll": (201, 201, 201), "running": (27, 158, 119), "ready": (230, 171, 2), "waiting": (166, 184, 204)}


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_html_page_draws_labels_and_a_legend_in_chromium(tmp_path):
    events = traced(tmp_path, "06_blocking_call")
    names = tracks(events)
    page = tmp_path / "page.html"
    page.write_text(timeline.render({"traceEvents": events}, "06 blocking call"))
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--window-size=1200,800"]
    shot = tmp_path / "page.png"
    subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=60)
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60).stdout
    # every lane's name is drawn in full, in the column that zooming and panning leave in place
    drawn = re.findall(r'<text class="lane-name"[^>]*>([^<]*)</text>', dom)
    assert sorted(drawn) == sorted(names.values()) and "task #2 ticker" in drawn
    # wide bars carry their label: the blocked main, the offloaded sleep, the states
    labels = re.findall(r'<text class="label"[^>]*>([^<]*)</text>', dom)
    assert "main" in labels and "sleep" in labels and "running" in labels
    assert all(len(label) >= 3 for label in labels)
    assert dom.count('class="legend-item"') == 7 and "ready, in a run queue" in dom
    width, height, rows = png_pixels(shot.read_bytes(), max_rows=160)
    assert (width, height) == (1200, 800)
    for name, colour in SWATCHES.items():           # the legend's swatches are painted near the top
        assert sum(row.count(colour) for row in rows[40:140]) >= 150, f"no {name} swatch in the legend"


def test_ctrl_c_during_trace_still_writes_the_json_and_the_page(tmp_path):
    script = tmp_path / "forever.py"
    script.write_text("from genloop.kernel import sleep\n\n\ndef main():\n    for _ in range(3):\n"
                      "        yield from sleep(0.01)\n    print('ready', flush=True)\n    yield from sleep(60)\n")
    out, page = tmp_path / "t.json", tmp_path / "t.html"
    program = subprocess.Popen([sys.executable, "-m", "genloop.demos.cli", "trace", script, "--out", out, "--html", page],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert program.stdout.readline().strip() == "ready"
        program.send_signal(signal.SIGINT)
        stdout, stderr = program.communicate(timeout=15)
    finally:
        program.kill()
    assert program.returncode == 130
    assert "interrupted (Ctrl-C)" in stderr and "Traceback" not in stderr
    assert f"wrote {out}" in stdout and f"wrote {page}" in stdout
    steps = [e for e in json.loads(out.read_text())["traceEvents"] if e.get("cat") == "step"]
    assert len(steps) >= 3 and '"traceEvents"' in page.read_text()
