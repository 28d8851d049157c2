"""Kernel micro-benchmarks: genloop vs asyncio, uvloop and trio.

    python -m bench.micro                      # everything, best of 3
    python -m bench.micro --scale 0.1          # quick check (10x less work)
    python -m bench.micro --libs asyncio,trio --bench checkpoints --json out.json

Four benchmarks, each written idiomatically for its library and doing the same
work on every side:

  spawn_join      spawn N tasks that do nothing (all of them first), then join
                  them all in order                              (N = 100,000)
  queue_pingpong  tasks A and B hand M messages over two unbounded queues:
                  A puts on q1, B gets from q1 and puts on q2, A gets from q2;
                  M counts every hand-over, so M/2 round trips  (M = 200,000)
  sleepers        N tasks each sleep a random 0-1 s (same seeded durations on
                  every side); reported: wall time minus 1.0 s  (N = 100,000)
  checkpoints     N tasks x 100 checkpoints each (asyncio: sleep(0); trio:
                  lowlevel.checkpoint(); genloop: a bare ``yield``) (N = 10,000)

``genloop-default`` runs spawn_join and checkpoints with the spawned tasks on
``Dispatchers.Default`` (joined from Main): the cost of the cross-thread
hand-off. It is not pinned to one core, since it needs two.

Method: every measurement runs in a fresh process (this script re-invokes
itself as ``python -m bench.micro --one LIB BENCH``, which prints the seconds
as JSON), pinned with ``taskset -c CPU`` when taskset exists; the best of
``--rounds`` is reported. Rounds are interleaved (round 1 of everything, then
round 2, ...) so slow drift of the machine hits every library alike. Only the
work is timed, with ``time.perf_counter`` from inside the running loop (inside
the main generator for genloop): interpreter start, imports, loop creation and
shutdown are excluded. Same interpreter and the same gc settings on every side
(default thresholds, a ``gc.collect()`` just before the timed region;
``--no-gc`` disables the collector everywhere).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from genloop.demos.measure.machine import machine

# --------------------------------------------------------------------------
# Workload sizes (at --scale 1) and shared constants
# --------------------------------------------------------------------------

#: genloop's slow-step watchdog (a thread that samples Main on the wall
#: clock) is on, as ``run`` has it; ``bench.callgrind`` turns it off
#: (``--no-watchdog``): under valgrind, 50 times slower, its samples and the
#: slow-step reports they make (a step of thousands of spawns is slow there)
#: would count 50 times over, and differently from run to run.
WATCHDOG = True
SPAWN_TASKS = 100_000          # spawn_join: tasks
PINGPONG_MESSAGES = 200_000    # queue_pingpong: hand-overs (2 per round trip)
SLEEPERS = 100_000             # sleepers: tasks
CHECKPOINT_TASKS = 10_000      # checkpoints: tasks ...
CHECKPOINTS_PER_TASK = 100     # ... times this many checkpoints each (not scaled)
SLEEP_SEED = 20240601          # same durations on every side

BENCHES = ("spawn_join", "queue_pingpong", "sleepers", "checkpoints")
LIBS = ("genloop", "asyncio", "uvloop", "trio", "genloop-default")
# Which benchmarks each library runs (genloop-default only makes sense where
# the spawned tasks can live on another dispatcher than their joiner).
LIB_BENCHES = {
    "genloop": BENCHES,
    "asyncio": BENCHES,
    "uvloop": BENCHES,
    "trio": BENCHES,
    "genloop-default": ("spawn_join", "checkpoints"),
}
UNPINNED = {"genloop-default"}  # needs Main + a Default worker thread
BASELINE = "asyncio"

REPO = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT = 900.0  # seconds; a hung kernel shows "error", not a hung bench


def sizes(scale: float) -> dict:
    def n(x: int) -> int:
        return max(1, int(round(x * scale)))

    messages = n(PINGPONG_MESSAGES)
    messages += messages % 2  # whole round trips
    return {
        "spawn_join": n(SPAWN_TASKS),
        "queue_pingpong": messages,
        "sleepers": n(SLEEPERS),
        "checkpoints": n(CHECKPOINT_TASKS),
    }


def work_label(bench: str, size: int) -> str:
    return {
        "spawn_join": f"{size:,} tasks",
        "queue_pingpong": f"{size:,} msgs",
        "sleepers": f"{size:,} tasks, wall-1s",
        "checkpoints": f"{size:,} x {CHECKPOINTS_PER_TASK}",
    }[bench]


def sleep_durations(n: int) -> list[float]:
    rng = random.Random(SLEEP_SEED)
    return [rng.random() for _ in range(n)]  # uniform in [0, 1)


# --------------------------------------------------------------------------
# asyncio and uvloop (same coroutines, different loop)
# --------------------------------------------------------------------------

def asyncio_benches():
    import asyncio

    async def noop():
        pass

    async def spawn_join(n):
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(noop()) for _ in range(n)]
        for t in tasks:
            await t
        return time.perf_counter() - t0

    async def queue_pingpong(messages):
        rounds = messages // 2
        q1, q2 = asyncio.Queue(), asyncio.Queue()  # unbounded

        async def a():
            for i in range(rounds):
                await q1.put(i)
                await q2.get()

        async def b():
            for _ in range(rounds):
                await q2.put(await q1.get())

        t0 = time.perf_counter()
        ta, tb = asyncio.create_task(a()), asyncio.create_task(b())
        await ta
        await tb
        return time.perf_counter() - t0

    async def sleeper(d):
        await asyncio.sleep(d)

    async def sleepers(durations):
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(sleeper(d)) for d in durations]
        for t in tasks:
            await t
        return time.perf_counter() - t0 - 1.0

    async def checkpointer(k):
        for _ in range(k):
            await asyncio.sleep(0)

    async def checkpoints(n):
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(checkpointer(CHECKPOINTS_PER_TASK)) for _ in range(n)]
        for t in tasks:
            await t
        return time.perf_counter() - t0

    return {"spawn_join": spawn_join, "queue_pingpong": queue_pingpong,
            "sleepers": sleepers, "checkpoints": checkpoints}


def run_asyncio(bench: str, arg, loop_factory=None) -> float:
    import asyncio

    fn = asyncio_benches()[bench]

    async def main():
        gc.collect()
        return await fn(arg)

    with asyncio.Runner(debug=False, loop_factory=loop_factory) as runner:
        return runner.run(main())


def run_uvloop(bench: str, arg) -> float:
    import uvloop

    return run_asyncio(bench, arg, loop_factory=uvloop.new_event_loop)


# --------------------------------------------------------------------------
# trio
# --------------------------------------------------------------------------

def run_trio(bench: str, arg) -> float:
    import trio

    async def noop():
        pass

    # trio has no per-task join: the idiomatic "spawn all, join all" is a
    # nursery; leaving the `async with` block joins every child.
    async def spawn_join(n):
        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(noop)
        return time.perf_counter() - t0

    async def queue_pingpong(messages):
        rounds = messages // 2
        # Unbounded queues: memory channels with max_buffer_size=math.inf (the
        # trio docs' equivalent of an unbounded asyncio.Queue).
        s1, r1 = trio.open_memory_channel(math.inf)
        s2, r2 = trio.open_memory_channel(math.inf)

        async def a():
            for i in range(rounds):
                await s1.send(i)
                await r2.receive()

        async def b():
            for _ in range(rounds):
                await s2.send(await r1.receive())

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a)
            nursery.start_soon(b)
        return time.perf_counter() - t0

    async def sleeper(d):
        await trio.sleep(d)

    async def sleepers(durations):
        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for d in durations:
                nursery.start_soon(sleeper, d)
        return time.perf_counter() - t0 - 1.0

    async def checkpointer(k):
        checkpoint = trio.lowlevel.checkpoint
        for _ in range(k):
            await checkpoint()

    async def checkpoints(n):
        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(checkpointer, CHECKPOINTS_PER_TASK)
        return time.perf_counter() - t0

    fn = {"spawn_join": spawn_join, "queue_pingpong": queue_pingpong,
          "sleepers": sleepers, "checkpoints": checkpoints}[bench]

    async def main():
        gc.collect()
        return await fn(arg)

    return trio.run(main)


# --------------------------------------------------------------------------
# genloop (plain generators; `yield from` traps; bare `yield` = checkpoint)
# --------------------------------------------------------------------------

def run_genloop(bench: str, arg, on_default: bool = False) -> float:
    from genloop.kernel import Dispatchers, Queue, run, sleep, spawn
    from genloop.kernel.runner import SLOW_STEP

    dispatcher = Dispatchers.Default if on_default else None  # None: parent's (Main)

    def noop():
        return
        yield  # makes this a generator function

    def spawn_join(n):
        t0 = time.perf_counter()
        tasks = []
        append = tasks.append
        for _ in range(n):
            append((yield from spawn(noop, dispatcher=dispatcher)))
        for t in tasks:
            yield from t.join()
        return time.perf_counter() - t0

    def queue_pingpong(messages):
        rounds = messages // 2
        q1, q2 = Queue(), Queue()  # unbounded

        def a():
            for i in range(rounds):
                yield from q1.put(i)
                yield from q2.get()

        def b():
            for _ in range(rounds):
                yield from q2.put((yield from q1.get()))

        t0 = time.perf_counter()
        ta = yield from spawn(a)
        tb = yield from spawn(b)
        yield from ta.join()
        yield from tb.join()
        return time.perf_counter() - t0

    def sleeper(d):
        yield from sleep(d)

    def sleepers(durations):
        t0 = time.perf_counter()
        tasks = []
        append = tasks.append
        for d in durations:
            append((yield from spawn(sleeper, d)))
        for t in tasks:
            yield from t.join()
        return time.perf_counter() - t0 - 1.0

    def checkpointer(k):
        for _ in range(k):
            yield

    def checkpoints(n):
        t0 = time.perf_counter()
        tasks = []
        append = tasks.append
        for _ in range(n):
            append((yield from spawn(checkpointer, CHECKPOINTS_PER_TASK, dispatcher=dispatcher)))
        for t in tasks:
            yield from t.join()
        return time.perf_counter() - t0

    fn = {"spawn_join": spawn_join, "queue_pingpong": queue_pingpong,
          "sleepers": sleepers, "checkpoints": checkpoints}[bench]

    def main():
        gc.collect()
        return (yield from fn(arg))

    return run(main, slow_step=SLOW_STEP if WATCHDOG else None)


def run_genloop_default(bench: str, arg) -> float:
    return run_genloop(bench, arg, on_default=True)


RUNNERS = {
    "genloop": run_genloop,
    "asyncio": run_asyncio,
    "uvloop": run_uvloop,
    "trio": run_trio,
    "genloop-default": run_genloop_default,
}

IMPORT_CHECKS = {
    "genloop": "from genloop import run, spawn, sleep, Queue, Dispatchers",
    "genloop-default": "from genloop import run, spawn, sleep, Queue, Dispatchers",
    "asyncio": "import asyncio",
    "uvloop": "import uvloop",
    "trio": "import trio, trio.lowlevel",
}


# --------------------------------------------------------------------------
# Child side: one measurement in this (fresh) process
# --------------------------------------------------------------------------

def child_one(lib: str, bench: str, scale: float, no_gc: bool, watchdog: bool = True) -> int:
    global WATCHDOG
    WATCHDOG = watchdog
    if no_gc:
        gc.disable()
    size = sizes(scale)[bench]
    arg = sleep_durations(size) if bench == "sleepers" else size
    seconds = RUNNERS[lib](bench, arg)
    print(json.dumps({"lib": lib, "bench": bench, "scale": scale, "seconds": seconds}))
    return 0


def child_check(lib: str) -> int:
    try:
        exec(IMPORT_CHECKS[lib], {})
    except Exception as e:  # ImportError, or a half-written module
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 3
    return 0


# --------------------------------------------------------------------------
# Parent side: orchestrate fresh processes, collect, print the table
# --------------------------------------------------------------------------

def child_env() -> dict:
    env = dict(os.environ)
    # asyncio's debug mode / dev mode would slow one side only; keep them off.
    env.pop("PYTHONASYNCIODEBUG", None)
    env.pop("PYTHONDEVMODE", None)
    return env


def pin_cpu() -> int | None:
    """The CPU children are pinned to: 0, or the lowest this process may use."""
    if not shutil.which("taskset"):
        return None
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return 0
    return 0 if 0 in allowed else min(allowed)


def child_cmd(lib: str, args: list[str], cpu: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "bench.micro", *args]
    if cpu is not None and lib not in UNPINNED:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    return cmd


def check_lib(lib: str) -> tuple[bool, str]:
    p = subprocess.run([sys.executable, "-m", "bench.micro", "--check", lib],
                       cwd=REPO, env=child_env(), capture_output=True, text=True,
                       timeout=120)
    return p.returncode == 0, p.stderr.strip()


def measure(lib: str, bench: str, scale: float, no_gc: bool, cpu: int | None,
            timeout: float) -> tuple[float | None, str]:
    args = ["--one", lib, bench, "--scale", repr(scale)]
    if no_gc:
        args.append("--no-gc")
    try:
        p = subprocess.run(child_cmd(lib, args, cpu), cwd=REPO, env=child_env(),
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = e.stderr or ""
        if isinstance(err, bytes):
            err = err.decode(errors="replace")
        return None, f"timed out after {timeout:g} s\n{err}"
    if p.returncode != 0:
        return None, f"exit status {p.returncode}\n{p.stderr}"
    try:
        return float(json.loads(p.stdout.strip().splitlines()[-1])["seconds"]), ""
    except (ValueError, KeyError, IndexError) as e:
        return None, f"unreadable child output ({e}): {p.stdout[-500:]!r}\n{p.stderr}"


def fmt_cell(best: float | None, base: float | None, status: str) -> str:
    if status in ("n/a", "-", "error"):
        return status
    s = f"{best:.3f} s"
    if base and base > 0:
        s += f" ({best / base:.2f}x)"
    if status == "partial":
        s += " !"
    return s


def render_table(results: dict, libs: list[str], benches: list[str],
                 scale: float) -> str:
    size = sizes(scale)
    header = ["benchmark", "work", *libs]
    rows = []
    for bench in benches:
        base = results[BASELINE][bench]["best"] if BASELINE in results else None
        row = [bench, work_label(bench, size[bench])]
        for lib in libs:
            r = results[lib][bench]
            row.append(fmt_cell(r["best"], base, r["status"]))
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells):
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per cell; best is kept")
    ap.add_argument("--libs", default=",".join(LIBS), help="comma list of " + ",".join(LIBS))
    ap.add_argument("--bench", default=",".join(BENCHES), help="comma list of " + ",".join(BENCHES))
    ap.add_argument("--json", metavar="FILE", help="also write every measurement as JSON")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the task/message counts")
    ap.add_argument("--no-gc", action="store_true", help="disable the garbage collector (every side)")
    ap.add_argument("--timeout", type=float, default=CHILD_TIMEOUT, help="per-child timeout, seconds")
    ap.add_argument("--no-watchdog", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--one", nargs=2, metavar=("LIB", "BENCH"), help=argparse.SUPPRESS)
    ap.add_argument("--check", metavar="LIB", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    if a.check:
        return child_check(a.check)
    if a.one:
        return child_one(a.one[0], a.one[1], a.scale, a.no_gc, not a.no_watchdog)

    libs = [x.strip() for x in a.libs.split(",") if x.strip()]
    benches = [x.strip() for x in a.bench.split(",") if x.strip()]
    bad = [x for x in libs if x not in LIBS] + [x for x in benches if x not in BENCHES]
    if bad:
        ap.error(f"unknown library/benchmark: {', '.join(bad)}")
    if a.rounds < 1 or a.scale <= 0:
        ap.error("--rounds must be >= 1 and --scale > 0")

    cpu = pin_cpu()
    results: dict = {lib: {b: {"times": [], "errors": [], "best": None, "status": "-"}
                           for b in benches} for lib in libs}
    unavailable = {}
    for lib in libs:
        ok, msg = check_lib(lib)
        if not ok:
            unavailable[lib] = msg.splitlines()[-1] if msg else "import failed"
        if not ok:
            print(f"[micro] {lib}: not importable ({msg.splitlines()[-1] if msg else '?'}) -> n/a",
                  file=sys.stderr)
        for b in benches:
            if not ok:
                results[lib][b]["status"] = "n/a"
            elif b in LIB_BENCHES[lib]:
                results[lib][b]["status"] = "pending"

    for rnd in range(1, a.rounds + 1):
        for bench in benches:
            for lib in libs:
                r = results[lib][bench]
                if r["status"] != "pending" or r["errors"]:
                    continue  # n/a, not applicable, or already failed: don't retry
                secs, err = measure(lib, bench, a.scale, a.no_gc, cpu, a.timeout)
                if secs is None:
                    r["errors"].append(err)
                    print(f"[micro] round {rnd} {bench:<15} {lib:<16} ERROR", file=sys.stderr)
                else:
                    r["times"].append(secs)
                    print(f"[micro] round {rnd} {bench:<15} {lib:<16} {secs:.4f} s", file=sys.stderr)

    for lib in libs:
        for bench in benches:
            r = results[lib][bench]
            if r["status"] != "pending":
                continue
            if r["times"]:
                r["best"] = min(r["times"])
                r["status"] = "partial" if r["errors"] else "ok"
            else:
                r["status"] = "error"

    info = machine()
    command = " ".join(shlex.quote(x) for x in [sys.executable, "-m", "bench.micro",
                                                   *(sys.argv[1:] if argv is None else argv)])
    pin_note = (f"taskset -c {cpu}" if cpu is not None else "not pinned (no taskset)")

    print(f"genloop kernel micro-benchmarks  (best of {a.rounds}, each run in a fresh process;"
          f" scale {a.scale:g})")
    print()
    print(render_table(results, libs, benches, a.scale))
    print()
    print(f"  seconds of timed work (lower is better); (Nx) = time / {BASELINE}'s time.")
    if "sleepers" in benches:
        print("  sleepers: wall time beyond 1 s (total wall minus 1.0; the longest sleep is just under 1 s).")
    if "queue_pingpong" in benches:
        print("  queue_pingpong: M messages handed over in all = M/2 round trips A->B->A; unbounded"
              " queues (trio: memory channels, max_buffer_size=inf).")
    if "checkpoints" in benches:
        print("  checkpoints: asyncio/uvloop `await asyncio.sleep(0)`, trio"
              " `await trio.lowlevel.checkpoint()`, genloop a bare `yield`.")
    if "trio" in libs:
        print("  trio joins through a nursery (no per-task join); the others join each task in spawn order.")
    print(f"  pinning: {pin_note} for every column"
          + (" except genloop-default, which is NOT pinned (its tasks run on Dispatchers.Default"
             " threads, joined from Main: the cross-thread hand-off needs a second core)."
             if "genloop-default" in libs else "."))
    if "genloop-default" in libs:
        print("  genloop-default runs only spawn_join and checkpoints ('-' elsewhere).")
    for lib, why in unavailable.items():
        print(f"  n/a: {lib} is not importable here ({why}).")
    if any(r["status"] == "partial" for lr in results.values() for r in lr.values()):
        print("  '!': some rounds failed; best of the rounds that succeeded (stderr below).")
    gc_note = "disabled (--no-gc)" if a.no_gc else f"enabled, thresholds {gc.get_threshold()}"
    print(f"  gc: {gc_note}, gc.collect() before each timed region, on every side.")
    print()
    print(f"machine: {info['python']} ({sys.executable})")
    print(f"         {info['cores']} cores, CPU {info['cpu']}, {info['system']}")
    print(f"command: {command}")

    failures = [(lib, b, r) for lib, lr in results.items() for b, r in lr.items() if r["errors"]]
    for lib, bench, r in failures:
        print()
        print(f"--- {lib} / {bench}: {r['errors'][0].splitlines()[0] if r['errors'][0] else 'error'}")
        tail = r["errors"][0].splitlines()[1:][-25:]
        for ln in tail:
            print(f"    {ln}")

    if a.json:
        payload = {
            "rounds": a.rounds, "scale": a.scale, "no_gc": a.no_gc,
            "pinned_cpu": cpu, "unpinned": sorted(UNPINNED & set(libs)),
            "sizes": {b: sizes(a.scale)[b] for b in benches},
            "checkpoints_per_task": CHECKPOINTS_PER_TASK,
            "machine": info, "command": command, "baseline": BASELINE,
            "unavailable": unavailable,
            "results": {
                lib: {b: {"status": r["status"], "best": r["best"], "times": r["times"],
                          "ratio": (r["best"] / results[BASELINE][b]["best"]
                                    if r["best"] is not None and BASELINE in results
                                    and results[BASELINE][b]["best"] else None),
                          "errors": r["errors"]}
                      for b, r in lr.items()}
                for lib, lr in results.items()},
        }
        Path(a.json).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\n(json written to {a.json})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
