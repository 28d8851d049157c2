"""A trace as a self-contained HTML page: one SVG lane per worker thread, a bar per step.

The page carries the Trace Event Format JSON inline and draws it with a few
lines of inline JavaScript, so it opens from disk with no network: lanes
from the ``thread_name`` records, a bar per complete ("X") event with its
details on hover, and the waker-to-woken flow arrows.
"""
import html
import json

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { font: 13px system-ui, sans-serif; margin: 1em; color: #222; }
#view { overflow-x: auto; border: 1px solid #ccc; }
.lane-name { font-weight: 600; }
.lane-bg { fill: #f6f6f6; }
.slice { stroke: #0003; }
.slice:hover { stroke: #000; stroke-width: 2; }
.poll { fill: #c9c9c9; }
.flow { stroke: #333; stroke-opacity: .45; fill: none; }
.slow { fill: #d00; }
.tick { stroke: #ddd; } .tick-label { fill: #777; font-size: 11px; }
</style></head>
<body>
<h1>__TITLE__</h1>
<p>One lane per worker thread; a bar per step, named after its task (hover for details);
grey bars are the poller waiting; arrows go from the step that woke a task to the task's next step.
Zoom: <input id="zoom" type="range" min="0" max="12" value="0" step="0.5"></p>
<div id="view"></div>
<script id="trace" type="application/json">__TRACE__</script>
<script>
"use strict";
const NS = "http://www.w3.org/2000/svg", LANE = 30, LEFT = 110, TOP = 24;
const events = JSON.parse(document.getElementById("trace").textContent).traceEvents;
const names = {}, order = {};
for (const e of events) if (e.ph === "M") {
  if (e.name === "thread_name") names[e.tid] = e.args.name;
  if (e.name === "thread_sort_index") order[e.tid] = e.args.sort_index;
}
const tids = Object.keys(names).map(Number).sort((a, b) => (order[a] ?? a) - (order[b] ?? b) || a - b);
const row = Object.fromEntries(tids.map((t, i) => [t, i]));
const slices = events.filter(e => e.ph === "X");
const t0 = Math.min(...slices.map(e => e.ts)), t1 = Math.max(...slices.map(e => e.ts + e.dur));
function el(tag, attrs, parent, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = text;
  if (parent) parent.appendChild(n);
  return n;
}
const hue = s => [...s].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 360, 7);
const ms = us => +(us / 1000).toFixed(3) + " ms";
function draw(zoom) {
  const width = Math.max(600, (document.body.clientWidth || 1200) - 40) * Math.pow(2, zoom);
  const k = (width - LEFT - 10) / Math.max(1, t1 - t0), x = ts => LEFT + (ts - t0) * k;
  const svg = el("svg", {width, height: TOP + LANE * tids.length + 10, id: "timeline"});
  el("defs", {}, svg).innerHTML =
    '<marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="6" markerHeight="6" orient="auto">' +
    '<path d="M0,0 L8,4 L0,8 z" fill="#333"/></marker>';
  const ticks = el("g", {class: "axis"}, svg), span = Math.max(1, t1 - t0);
  const p = Math.pow(10, Math.floor(Math.log10(span / 10)));
  const tick = [1, 2, 5, 10].map(m => m * p).find(v => v >= span / 10);     // 1-2-5 steps, about ten ticks
  for (let t = 0; t <= span; t += tick) {
    el("line", {class: "tick", x1: x(t0 + t), x2: x(t0 + t), y1: TOP - 6, y2: TOP + LANE * tids.length}, ticks);
    el("text", {class: "tick-label", x: x(t0 + t) + 2, y: TOP - 8}, ticks, ms(t));
  }
  for (const tid of tids) {
    const g = el("g", {class: "lane", "data-tid": tid, "data-name": names[tid]}, svg), y = TOP + row[tid] * LANE;
    el("rect", {class: "lane-bg", x: 0, y, width, height: LANE - 4}, g);
    el("text", {class: "lane-name", x: 6, y: y + LANE / 2 + 2}, g, names[tid]);
    for (const e of slices.filter(s => s.tid === tid)) {
      const poll = e.cat === "poll";
      const r = el("rect", {class: poll ? "slice poll" : "slice", x: x(e.ts), y: y + 3,
                            width: Math.max(1, e.dur * k), height: LANE - 10,
                            fill: poll ? "" : `hsl(${hue(e.name)},65%,62%)`}, g);
      const what = poll ? `poll (timeout ${e.args.timeout}), woke ${e.args.woken}`
                        : `task #${e.args.task} ${e.name}\\n${e.args.trap}`;
      el("title", {}, r, `${what}\\n${names[tid]} at +${ms(e.ts - t0)} for ${ms(e.dur)}`);
    }
  }
  const starts = {};
  for (const e of events) if (e.ph === "s") starts[e.id] = e;
  const flows = el("g", {class: "flows"}, svg);
  for (const f of events) if (f.ph === "f" && starts[f.id] && f.tid in row) {
    const s = starts[f.id], y0 = TOP + row[s.tid] * LANE + LANE / 2, y1 = TOP + row[f.tid] * LANE + LANE / 2;
    el("path", {class: "flow", "marker-end": "url(#arrow)",
                d: `M${x(s.ts)},${y0} C${x(s.ts) + 20},${y0} ${x(f.ts) - 20},${y1} ${x(f.ts)},${y1}`}, flows);
  }
  for (const e of events) if (e.ph === "i" && e.tid in row) {
    const m = el("rect", {class: "slow", x: x(e.ts) - 2, y: TOP + row[e.tid] * LANE, width: 4, height: LANE - 4}, svg);
    el("title", {}, m, `${e.name}: task #${e.args.task} ${e.args.name} ran ${e.args.seconds} s at ${e.args.at}`);
  }
  document.getElementById("view").replaceChildren(svg);
}
const zoom = document.getElementById("zoom");
zoom.addEventListener("input", () => draw(Number(zoom.value)));
draw(0);
</script>
</body></html>
"""


def render(trace: dict, title: str) -> str:
    """The page for ``trace`` (a ``ChromeTracer.trace()`` dict)."""
    data = json.dumps(trace).replace("</", "<\\/")    # a "</script>" in a task name must not end the block
    return PAGE.replace("__TITLE__", html.escape(title)).replace("__TRACE__", data)
