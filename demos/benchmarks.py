"""`genloop bench servers|search|c10k`: start the servers, load them, show what each style costs.

Each server runs in a process of its own pinned to one CPU and the load
generator in another pinned to the other (`demos.harness`, `demos.measure`):
wrk when it is installed, else `demos.measure.loadgen` on genloop. While
the load runs, the server's process tree is sampled for its peak memory
(PSS) and threads, and its CPU time is divided by the requests answered: on
a machine shared with other jobs requests/s swing, CPU per request hardly
does. `--rounds` goes over all the
styles that many times and keeps medians. The table has one row per style and
concurrency; `--json` keeps the figures with the machine and the command,
`--chart` draws throughput and p99 against concurrency (matplotlib, the
`plot` extra).
"""
import functools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal, Optional, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from genloop.demos import c10k as c10k_demo
from genloop.demos import harness
from genloop.demos.measure import clients
from genloop.demos.measure.children import CLIENT_CPU, FD_MARGIN, SERVER_CPU, Running, raise_nofile
from genloop.demos.measure.machine import machine
from genloop.demos.measure.procfs import Peak
from genloop.demos.search import data
from genloop.demos.search.backends import ROLES
from genloop.demos.search.blocking import THREADS
from genloop.demos.search.front import STYLES as FRONTS
from genloop.demos.styles import STYLES

app = typer.Typer(help="Measure the demos: throughput, latency, memory and threads, style by style.",
                  no_args_is_help=True)
#: Columns of the output when it is not a terminal (a file, a pipe): room for every column.
PIPE_WIDTH = 120
console = Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)

#: Seconds of load per run (wrk counts whole seconds).
DURATION = 5
#: Seconds between two updates of the progress bar.
PROGRESS_EVERY = 0.1
#: Different searches the search bench cycles through, drawn from a fixed seed.
SEARCH_PATHS = 1_000
SEARCH_SEED = 7
#: The latency per backend call that the article's numbers assume.
SEARCH_LATENCY = 0.01
#: fork is left out unless asked for: a process per connection.
C10K_STYLES = ("threads", "event-loop", "reactor", "coroutines")

Client = Annotated[Literal["auto", "wrk", "genloop"], typer.Option(
    help="The load generator: wrk, or demos.measure.loadgen on genloop (auto: wrk when installed).")]
Concurrency = Annotated[Optional[list[int]], typer.Option(
    "--concurrency", "-c", min=1, help="Connections kept busy at once; repeat for several.")]
Duration = Annotated[int, typer.Option(min=1, help="Seconds of load per style and concurrency.")]
Rounds = Annotated[int, typer.Option(min=1, help="Rounds over all the styles; each row shows the median.")]


def _writable(path: Path | None) -> Path | None:
    if path is not None and not path.resolve().parent.is_dir():
        raise typer.BadParameter(f"no folder {str(path.resolve().parent)!r} to write {path.name!r} in")
    return path


JsonFile = Annotated[Optional[Path], typer.Option(
    "--json", callback=_writable, help="Also write the figures to this file.")]
ChartFile = Annotated[Optional[Path], typer.Option(
    "--chart", callback=_writable, help="Also draw throughput and p99 against concurrency into this PNG "
    "(needs matplotlib).")]


def _styles(names: Sequence[str], help: str):
    """The repeatable ``--style`` option: it refuses names not in ``names``, listing those that are."""
    def check(values: list[str] | None) -> list[str] | None:
        unknown = [v for v in values or () if v not in names]
        if unknown:
            raise typer.BadParameter(f"no style {', '.join(map(repr, unknown))}; choose from {', '.join(names)}")
        return values
    return Annotated[Optional[list[str]], typer.Option("--style", callback=check, help=help)]


ServerStyles = _styles(tuple(STYLES), "A style to measure; repeat for several (default: all five).")
FrontStyles = _styles(tuple(FRONTS), "A front style to measure; repeat for several (default: all three).")
HeldStyles = _styles(tuple(STYLES), f"A style to load; repeat for several (default: {', '.join(C10K_STYLES)}).")


@dataclass
class Row:
    style: str
    concurrency: int
    rps: float
    p50: float          # seconds
    p99: float
    errors: int         # failed connections and non-2xx answers
    memory: int         # peak bytes (PSS) of the server's process tree under load
    threads: int        # peak threads in that tree
    cpu: float          # CPU time (user + system) the server spent per request, in µs
    backends_cpu: float | None = None   # the same for the helper processes (search: the backends)
    ratio: float | None = None    # rps / the baseline style's at the same concurrency


class Bench:
    """One bench run: the client, the progress bar, the rows measured."""

    def __init__(self, client: str, duration: int, rounds: int, styles: int, concurrency: list[int],
                 chart: Path | None) -> None:
        if chart is not None:
            try:
                import matplotlib  # noqa: F401 - checked now, not after minutes of load
            except ImportError:
                raise typer.BadParameter("drawing needs matplotlib: pip install 'genloop[plot]'",
                                         param_hint="--chart") from None
        if client == "wrk" and shutil.which("wrk") is None:
            raise typer.BadParameter("wrk is not installed; use --client genloop", param_hint="--client")
        self.client = clients.choose(client)
        self.duration, self.rounds = duration, rounds
        self.rows = []
        self.progress = Progress(TextColumn("{task.description:<28}"), BarColumn(), TimeElapsedColumn(),
                                 console=console)
        self.task = self.progress.add_task("starting", total=rounds * styles * len(concurrency) * duration)
        self.done = 0.0
        self.load_before = round(os.getloadavg()[0], 2)   # other jobs on the machine, before ours start
        raise_nofile(max(concurrency) + FD_MARGIN)     # inherited by the servers and the clients
        self.workdir = Path(tempfile.mkdtemp(prefix="genloop-bench-"))

    def __enter__(self) -> "Bench":
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def paths(self, paths: list[str]) -> list[str]:
        """Client options making it cycle through ``paths`` (a Lua script for wrk)."""
        if self.client == "wrk":
            script = self.workdir / "paths.lua"
            quoted = ",\n".join(json.dumps(p) for p in paths)
            script.write_text(f"local paths = {{\n{quoted}\n}}\nlocal i = 0\n"
                              "request = function()\n  i = i % #paths + 1\n"
                              "  return wrk.format(\"GET\", paths[i])\nend\n")
            return ["-s", str(script)]
        listing = self.workdir / "paths.txt"
        listing.write_text("\n".join(paths) + "\n")
        return ["--paths", str(listing)]

    def run(self, servers: dict, concurrency: list[int], extra=(), helpers=()) -> None:
        """Measure every server (style -> ``Launched``) at every concurrency, ``rounds`` times over.

        Rounds go through all the styles in turn, so a slow patch of a busy
        machine hits them alike; each row keeps the median of its rounds.
        ``helpers`` are processes the servers need (their CPU time is counted apart).
        """
        samples = {}
        for round_ in range(1, self.rounds + 1):
            for style, server in servers.items():
                for c in concurrency:
                    samples.setdefault((style, c), []).append(
                        self._sample(style, server, c, round_, extra, helpers))
        for (style, c), runs in samples.items():
            median = {f: statistics.median(getattr(r, f) for r in runs) for f in ("rps", "p50", "p99", "cpu")}
            helped = statistics.median(r.backends_cpu for r in runs) if helpers else None
            self.rows.append(Row(style, c, median["rps"], median["p50"], median["p99"], sum(r.errors for r in runs),
                                 max(r.memory for r in runs), max(r.threads for r in runs), median["cpu"], helped))

    def _sample(self, style: str, server: Running, concurrency: int, round_: int, extra,
                helpers) -> Row:
        """Load ``server`` with ``concurrency`` connections for the duration, once."""
        label = f"{style} @ {concurrency}" + (f", round {round_}" if self.rounds > 1 else "")
        self.progress.update(self.task, description=label)
        argv = clients.command(self.client, server.port, concurrency, self.duration, extra=extra)
        with Peak(server.pid, [h.pid for h in helpers]) as peak:
            process = subprocess.Popen(argv, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            started = time.monotonic()
            while True:
                try:
                    out, err = process.communicate(timeout=PROGRESS_EVERY)
                    break
                except subprocess.TimeoutExpired:
                    elapsed = time.monotonic() - started
                    self.progress.update(self.task, completed=self.done + min(elapsed, self.duration))
                    if elapsed > self.duration + clients.CLIENT_GRACE:
                        process.kill()
                        process.communicate()
                        raise RuntimeError(f"the {self.client} client did not finish against {style}")
        self.done += self.duration
        if process.returncode:
            raise RuntimeError(f"the {self.client} client failed against {style}: {err.strip()}")
        sample = clients.parse(self.client, out)
        self.progress.console.print(f"  {label}: {sample.rps:,.0f} req/s, p99 {sample.p99 * 1e3:,.1f} ms")
        requests = max(1.0, sample.rps * self.duration)
        return Row(style, concurrency, sample.rps, sample.p50, sample.p99, sample.errors, peak.memory,
                   peak.threads, peak.cpu / requests * 1e6, peak.others_cpu / requests * 1e6)

    def report(self, title: str, json_file: Path | None, chart: Path | None, baseline: str | None = None,
               **settings) -> None:
        if baseline is not None:
            base = {r.concurrency: r.rps for r in self.rows if r.style == baseline}
            for row in self.rows:
                if base.get(row.concurrency):
                    row.ratio = row.rps / base[row.concurrency]
        helped = any(r.backends_cpu is not None for r in self.rows)
        table = Table(title=title, box=box.SIMPLE_HEAD)
        for name in ("style", "conns", "req/s", "p50 ms", "p99 ms", "errors", "peak MiB", "threads",
                     "CPU µs/req", *(["backends µs/req"] if helped else [])):
            table.add_column(name, justify="left" if name == "style" else "right")
        if baseline is not None:
            table.add_column(f"vs {baseline}", justify="right")
        for r in self.rows:
            cells = [r.style, f"{r.concurrency:,}", f"{r.rps:,.0f}", f"{r.p50 * 1e3:,.1f}", f"{r.p99 * 1e3:,.1f}",
                     f"{r.errors:,}", f"{r.memory / 2**20:,.1f}", f"{r.threads:,}", f"{r.cpu:,.0f}"]
            if helped:
                cells.append(f"{r.backends_cpu:,.0f}")
            if baseline is not None:
                cells.append("-" if r.ratio is None else f"{r.ratio:.2f}x")
            table.add_row(*cells)
        console.print(table)
        about = machine()
        rounds = f", median of {self.rounds} rounds" if self.rounds > 1 else ""
        console.print(f"client {self.client}, {self.duration} s per run{rounds}; {about['cpu']}, "
                      f"{about['cores']} cores, Python {about['python']}, load average {self.load_before} "
                      f"before, {about['load_average'][0]} after")
        _save(json_file, {"title": title, "command": sys.argv, "machine": about, "load_before": self.load_before,
                          "client": self.client,
                          "duration": self.duration, "rounds": self.rounds, **settings,
                          "rows": [asdict(r) for r in self.rows]})
        if chart is not None:
            _chart(self.rows, chart, title)
            console.print(f"chart written to {chart}")


def _save(json_file: Path | None, figures: dict) -> None:
    if json_file is not None:
        json_file.write_text(json.dumps(figures, indent=2) + "\n")
        console.print(f"figures written to {json_file}")


def _chart(rows: list[Row], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (throughput, p99) = plt.subplots(1, 2, figsize=(11, 4.2))
    ticks = sorted({r.concurrency for r in rows})
    styles = list(dict.fromkeys(r.style for r in rows))
    if len(ticks) == 1:           # one concurrency: bars per style, not dots on a line
        for axes, value in ((throughput, lambda r: r.rps), (p99, lambda r: r.p99 * 1e3)):
            axes.bar(styles, [value(next(r for r in rows if r.style == s)) for s in styles],
                     color=[f"C{i}" for i in range(len(styles))])
            axes.set_xlabel(f"{ticks[0]:,} concurrent connections")
    else:
        for style in styles:
            mine = sorted((r for r in rows if r.style == style), key=lambda r: r.concurrency)
            xs = [r.concurrency for r in mine]
            throughput.plot(xs, [r.rps for r in mine], marker="o", label=style)
            p99.plot(xs, [r.p99 * 1e3 for r in mine], marker="o", label=style)
        for axes in (throughput, p99):
            axes.set_xscale("log")
            axes.set_xticks(ticks, [f"{t:,}" for t in ticks])
            axes.minorticks_off()
            axes.set_xlabel("concurrent connections")
        throughput.legend()
    for axes, label in ((throughput, "requests/s"), (p99, "p99 latency (ms)")):
        axes.set_ylim(bottom=0)   # from 0, so a 5% difference does not look like 5x
        axes.set_ylabel(label)
        axes.grid(True, alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


Command = TypeVar("Command", bound=Callable)


def _errors_are_messages(command: Command) -> Command:
    """Report a failed run (a server that would not start, too few files ...) in one line, not a traceback."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None
    return run  # type: ignore[return-value]


@app.command()
@_errors_are_messages
def servers(styles: ServerStyles = None, concurrency: Concurrency = None, duration: Duration = DURATION,
            rounds: Rounds = 1, client: Client = "auto", json_file: JsonFile = None, chart: ChartFile = None) -> None:
    """The five server styles, hello world over HTTP, side by side."""
    styles = styles or list(STYLES)
    concurrency = concurrency or [100, 1000]
    with Bench(client, duration, rounds, len(styles), concurrency, chart) as bench:
        with harness.launched_together([(style, ["--port", "0"]) for style in styles], cpu=SERVER_CPU) as started:
            bench.run(dict(zip(styles, started)), concurrency)
    bench.report("genloop bench servers: HTTP hello world", json_file, chart)


def search_paths(users: int, count: int = SEARCH_PATHS) -> list[str]:
    """Searches for the bench: one word each, for users picked at random (fixed seed)."""
    rng = random.Random(SEARCH_SEED)
    words = data.NOUNS + data.MATERIALS + data.ADJECTIVES
    return [f"/search?q={rng.choice(words)}&user={rng.randint(1, users)}" for _ in range(count)]


@app.command()
@_errors_are_messages
def search(styles: FrontStyles = None, concurrency: Concurrency = None, duration: Duration = DURATION,
           rounds: Rounds = 1, client: Client = "auto",
           latency: Annotated[float, typer.Option(min=0, help="Seconds each backend call sleeps.")] = SEARCH_LATENCY,
           workers: Annotated[int, typer.Option(min=1, help="Threads of the blocking front.")] = THREADS,
           users: Annotated[int, typer.Option(min=1, help="Users in the generated data.")] = data.USERS,
           products: Annotated[int, typer.Option(min=1, help="Products in the generated data.")] = data.PRODUCTS,
           json_file: JsonFile = None, chart: ChartFile = None) -> None:
    """The search front in its three styles against the same three backends."""
    styles = styles or list(FRONTS)
    concurrency = concurrency or [1000]
    with Bench(client, duration, rounds, len(styles), concurrency, chart) as bench:
        db = data.ensure(None, users, products)   # once, before the backends race to make it
        paths = bench.paths(search_paths(users))
        backends = [("search", ["--role", role, "--port", "0", "--db", str(db), "--users", str(users),
                                "--products", str(products), "--latency", str(latency)]) for role in ROLES]
        with harness.launched_together(backends, cpu=CLIENT_CPU) as started:
            addresses = [arg for role, backend in zip(ROLES, started)
                         for arg in (f"--{role}-backend", f"127.0.0.1:{backend.port}")]
            fronts = [("search", ["--style", style, "--port", "0", "--workers", str(workers), *addresses])
                      for style in styles]
            with harness.launched_together(fronts, cpu=SERVER_CPU) as servers:
                bench.run(dict(zip(styles, servers)), concurrency, paths, helpers=started)
    bench.report(f"genloop bench search: {latency * 1e3:g} ms per backend call, blocking front with "
                 f"{workers} threads", json_file, chart, baseline="blocking" if "blocking" in styles else None,
                 latency=latency, workers=workers)


@app.command()
@_errors_are_messages
def c10k(styles: HeldStyles = None,
         connections: Annotated[int, typer.Option("--connections", "-n", min=1,
                                                  help="Connections to hold open.")] = c10k_demo.CONNECTIONS,
         json_file: JsonFile = None) -> None:
    """Hold N connections on each style: how many are answered, memory per connection, threads."""
    styles = styles or list(C10K_STYLES)
    for style in styles:
        try:
            c10k_demo.check(style, connections)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--style") from None
    rows = []
    with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("")
        for style in styles:
            progress.update(task, description=f"{style}: {connections:,} connections")
            with c10k_demo.hold(style, connections, cpu=SERVER_CPU) as held:
                rows.append(held)
                progress.console.print(f"  {held.summary()}")
    table = Table(title=f"genloop bench c10k: {connections:,} connections held open", box=box.SIMPLE_HEAD)
    for name in ("style", "answered", "connect s", "answer s", "MiB before", "MiB after", "KiB/conn", "threads"):
        table.add_column(name, justify="left" if name == "style" else "right")
    for h in rows:
        table.add_row(h.style, f"{h.answered:,}", f"{h.connect_seconds:.2f}", f"{h.answer_seconds:.2f}",
                      f"{h.memory_before / 2**20:.1f}", f"{h.memory_after / 2**20:.1f}",
                      f"{h.bytes_per_connection / 1024:.1f}", f"{h.threads:,}")
    console.print(table)
    _save(json_file, {"title": "genloop bench c10k", "command": sys.argv, "machine": machine(),
                      "connections": connections, "rows": [h.figures() for h in rows]})
