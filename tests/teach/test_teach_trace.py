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
