"""A trace as a self-contained HTML page: one SVG lane per worker thread, a bar per step.

The page carries the Trace Event Format JSON inline and draws it with a few
lines of inline JavaScript, so it opens from disk with no network: lanes
from the ``thread_name`` records (worker threads, then one per task with its
states), a bar per complete ("X") event labelled where it is wide enough and
detailed on hover, the waker-to-woken flow arrows, and a legend. The lane
names sit in a column of their own, so zooming (slider, buttons, wheel) and
panning (drag, scroll) never hide them.
"""
import html
import json

from genloop.kernel.tracer import TASK_TRACKS

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { font: 13px system-ui, sans-serif; margin: 1em; color: #222; }
#chart { display: flex; border: 1px solid #ccc; }
#names { flex: none; background: #fff; border-right: 1px solid #ccc; }
#view { overflow-x: auto; overflow-y: hidden; flex: auto; cursor: grab; }
#view.dragging { cursor: grabbing; }
.lane-name { font-weight: 600; } .section { font-weight: 700; fill: #555; }
.lane-bg { fill: #f6f6f6; }
.slice { stroke: #0003; }
.slice:hover { stroke: #000; stroke-width: 2; }
.poll { fill: #c9c9c9; }
.running { fill: #1b9e77; } .ready { fill: #e6ab02; } .waiting { fill: #a6b8cc; }
.label { font-size: 11px; fill: #111; pointer-events: none; }
.flow { stroke: #333; stroke-opacity: .45; fill: none; }
.slow { fill: #d00; }
.tick { stroke: #ddd; } .tick-label { fill: #777; font-size: 11px; }
#legend { display: flex; flex-wrap: wrap; gap: .4em 1.4em; margin: .6em 0; }
.legend-item { display: flex; align-items: center; gap: .4em; }
#controls button { font: inherit; }
</style></head>
<body>
<h1>__TITLE__</h1>
<div id="legend">
__LEGEND__
</div>
<p id="controls">Zoom: <button id="out">&minus;</button> <input id="zoom" type="range" min="0" max="16" value="0" step="0.25">
<button id="in">+</button> <button id="fit">fit</button>
&nbsp; wheel over the timeline zooms around the pointer, dragging pans; the lane names stay put.</p>
<div id="chart"><div id="names"></div><div id="view"></div></div>
<script id="trace" type="application/json">__TRACE__</script>
<script>
"use strict";
const NS = "http://www.w3.org/2000/svg", LANE = 30, TOP = 24, SECTION = 22, TASKS = __TASK_TRACKS__;
const events = JSON.parse(document.getElementById("trace").textContent).traceEvents;
const names = {}, order = {};
for (const e of events) if (e.ph === "M") {
  if (e.name === "thread_name") names[e.tid] = e.args.name;
  if (e.name === "thread_sort_index") order[e.tid] = e.args.sort_index;
}
const tids = Object.keys(names).map(Number).sort((a, b) => (order[a] ?? a) - (order[b] ?? b) || a - b);
const threads = tids.filter(t => t < TASKS), tasks = tids.filter(t => t >= TASKS);
const ys = {};
let y = TOP;
for (const t of threads) { ys[t] = y; y += LANE; }
const tasksTop = y;
if (tasks.length) y += SECTION;
for (const t of tasks) { ys[t] = y; y += LANE; }
const height = y + 10;
const slices = events.filter(e => e.ph === "X");
const t0 = Math.min(...slices.map(e => e.ts)), t1 = Math.max(...slices.map(e => e.ts + e.dur));
const CHAR = 7;                                                 // px per character of the label font, about
const LEFT = 16 + CHAR * Math.max(8, ...tids.map(t => names[t].length));
function el(tag, attrs, parent, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = text;
  if (parent) parent.appendChild(n);
  return n;
}
const hue = s => [...s].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 360, 7);
const ms = us => +(us / 1000).toFixed(3) + " ms";
function fits(text, w) {                                        // the label that fits a bar w px wide, or ""
  const n = Math.floor((w - 6) / CHAR);
  return n < 3 ? "" : text.length <= n ? text : text.slice(0, n - 1) + "\u2026";
}
const stateClass = name => name.startsWith("waiting") ? "waiting" : name;
function drawNames() {                   // as wide as the longest name, measured once drawn
  const svg = el("svg", {width: LEFT, height, id: "lane-names"});
  const texts = tids.map(tid => el("text", {class: "lane-name", x: 6, y: ys[tid] + LANE / 2 + 2}, svg, names[tid]));
  if (tasks.length) el("text", {class: "section", x: 6, y: tasksTop + 15}, svg, "tasks");
  document.getElementById("names").replaceChildren(svg);
  const widest = Math.max(0, ...texts.map(t => t.getComputedTextLength ? t.getComputedTextLength() : 0));
  if (widest) svg.setAttribute("width", Math.ceil(widest) + 14);
}
const view = document.getElementById("view");
function draw(zoom) {
  const width = Math.max(600, view.clientWidth - 4) * Math.pow(2, zoom);
  const k = (width - 10) / Math.max(1, t1 - t0), x = ts => 4 + (ts - t0) * k;
  const svg = el("svg", {width, height, id: "timeline"});
  el("defs", {}, svg).innerHTML =
    '<marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="6" markerHeight="6" orient="auto">' +
    '<path d="M0,0 L8,4 L0,8 z" fill="#333"/></marker>';
  const ticks = el("g", {class: "axis"}, svg), span = Math.max(1, t1 - t0) / Math.pow(2, zoom);
  const p = Math.pow(10, Math.floor(Math.log10(span / 10)));
  const tick = [1, 2, 5, 10].map(m => m * p).find(v => v >= span / 10);     // 1-2-5 steps, about ten on screen
  for (let t = 0; t <= t1 - t0; t += tick) {
    el("line", {class: "tick", x1: x(t0 + t), x2: x(t0 + t), y1: TOP - 6, y2: height - 10}, ticks);
    el("text", {class: "tick-label", x: x(t0 + t) + 2, y: TOP - 8}, ticks, ms(t));
  }
  for (const tid of tids) {
    const g = el("g", {class: "lane", "data-tid": tid, "data-name": names[tid]}, svg), y = ys[tid];
    el("rect", {class: "lane-bg", x: 0, y, width, height: LANE - 4}, g);
    for (const e of slices.filter(s => s.tid === tid)) {
      const poll = e.cat === "poll", state = e.cat === "state", w = Math.max(1, e.dur * k);
      const cls = poll ? "slice poll" : state ? "slice state " + stateClass(e.name) : "slice";
      const r = el("rect", {class: cls, x: x(e.ts), y: y + 3, width: w, height: LANE - 10,
                            fill: poll || state ? "" : `hsl(${hue(e.name)},65%,62%)`}, g);
      const what = poll ? `poll (timeout ${e.args.timeout}), woke ${e.args.woken}`
                 : state ? `task #${e.args.task}: ${e.name}`
                 : `task #${e.args.task} ${e.name}\\n${e.args.trap}\\nCPU ${ms(e.args.cpu_us ?? 0)} of ${ms(e.dur)} wall`;
      el("title", {}, r, `${what}\\n${names[tid]} at +${ms(e.ts - t0)} for ${ms(e.dur)}`);
      const label = fits(poll ? "poll" : e.name, w);
      if (label) el("text", {class: "label", x: x(e.ts) + 3, y: y + LANE / 2 + 2}, g, label);
    }
  }
  const starts = {};
  for (const e of events) if (e.ph === "s") starts[e.id] = e;
  const flows = el("g", {class: "flows"}, svg);
  for (const f of events) if (f.ph === "f" && starts[f.id] && f.tid in ys) {
    const s = starts[f.id], y0 = ys[s.tid] + LANE / 2, y1 = ys[f.tid] + LANE / 2;
    el("path", {class: "flow", "marker-end": "url(#arrow)",
                d: `M${x(s.ts)},${y0} C${x(s.ts) + 20},${y0} ${x(f.ts) - 20},${y1} ${x(f.ts)},${y1}`}, flows);
  }
  for (const e of events) if (e.ph === "i" && e.tid in ys) {
    const m = el("rect", {class: "slow", x: x(e.ts) - 2, y: ys[e.tid], width: 4, height: LANE - 4}, svg);
    el("title", {}, m, `${e.name}: task #${e.args.task} ${e.args.name} ran ${e.args.seconds} s at ${e.args.at}`);
  }
  view.replaceChildren(svg);
}
const zoom = document.getElementById("zoom");
function setZoom(z, px) {                 // keep the time under ``px`` (pixels into the view) where it is
  z = Math.min(Number(zoom.max), Math.max(0, z));
  const at = px ?? view.clientWidth / 2, old = view.scrollWidth || 1, frac = (view.scrollLeft + at) / old;
  zoom.value = z;
  draw(z);
  view.scrollLeft = frac * view.scrollWidth - at;
}
zoom.addEventListener("input", () => setZoom(Number(zoom.value)));
document.getElementById("in").onclick = () => setZoom(Number(zoom.value) + 1);
document.getElementById("out").onclick = () => setZoom(Number(zoom.value) - 1);
document.getElementById("fit").onclick = () => setZoom(0);
view.addEventListener("wheel", ev => {
  ev.preventDefault();
  setZoom(Number(zoom.value) - Math.sign(ev.deltaY) * 0.5, ev.clientX - view.getBoundingClientRect().left);
}, {passive: false});
let drag = null;
view.addEventListener("mousedown", ev => { drag = [ev.clientX, view.scrollLeft]; view.classList.add("dragging"); });
addEventListener("mouseup", () => { drag = null; view.classList.remove("dragging"); });
addEventListener("mousemove", ev => { if (drag) view.scrollLeft = drag[1] - (ev.clientX - drag[0]); });
drawNames();
draw(0);
</script>
</body></html>
"""


#: The legend: (swatch width, the swatch as SVG, what it means).
LEGEND = [
    (34, '<rect width="16" height="14" fill="hsl(200,65%,62%)"/><rect x="17" width="16" height="14" '
         'fill="hsl(30,65%,62%)"/>', "a step, coloured by task (hover: what it asked for, CPU time)"),
    (16, '<rect class="poll" width="16" height="14"/>', "poll: Main waiting for I/O or a wake-up"),
    (16, '<rect class="running" width="16" height="14"/>', "task running"),
    (16, '<rect class="ready" width="16" height="14"/>', "ready, in a run queue"),
    (16, '<rect class="waiting" width="16" height="14"/>', "waiting (hover: on what)"),
    (26, '<path d="M1,7 L22,7" stroke="#333" marker-end="url(#arrow)"/>', "woke (or spawned) that task"),
    (8, '<rect class="slow" width="4" height="14" x="2"/>', "slow step on Main"),
]


def _legend() -> str:
    return "\n".join(f'<span class="legend-item"><svg width="{w}" height="14">{svg}</svg>{html.escape(text)}</span>'
                     for w, svg, text in LEGEND)


def render(trace: dict, title: str) -> str:
    """The page for ``trace`` (a ``ChromeTracer.trace()`` dict)."""
    data = json.dumps(trace).replace("</", "<\\/")    # a "</script>" in a task name must not end the block
    return (PAGE.replace("__TITLE__", html.escape(title)).replace("__TASK_TRACKS__", str(TASK_TRACKS))
            .replace("__LEGEND__", _legend())
            .replace("__TRACE__", data))
