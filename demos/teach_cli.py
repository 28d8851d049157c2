"""``genloop step``, ``genloop trace`` and ``genloop monitor``: the teaching commands.

``demos/cli.py`` registers each with one line. A SCRIPT is a Python file
defining ``main()`` (a generator function), or the number or name of one of
the lessons in ``demos/teach/`` ("01", "sleep_sort", ...).
"""
import contextlib
import importlib.util
import socket
import sys
from pathlib import Path

import typer
from rich.console import Console

from genloop.kernel import Cancelled, run
from genloop.kernel.monitor import PROMPT, connect_monitor
from genloop.kernel.stepper import DEFAULT_SIM_THREADS, Stepper
from genloop.kernel.tracer import TASK_TRACKS, ChromeTracer

from . import timeline
from .stepview import Session

LESSONS = Path(__file__).parent / "teach"
#: The exit status of a traced program stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED = 130
#: How long the monitor client waits for an answer before saying the program is gone.
MONITOR_TIMEOUT = 10.0


def lessons() -> list:
    return sorted(LESSONS.glob("[0-9][0-9]_*.py"))


def find_script(name: str) -> Path:
    """A path to a script, or the lesson in ``demos/teach/`` that ``name`` names."""
    path = Path(name)
    if path.is_file():
        return path
    found = [p for p in lessons() if name in p.stem]
    if len(found) != 1:
        raise typer.BadParameter(f"{name!r} is neither a file nor one lesson of "
                                 f"{', '.join(p.stem for p in lessons())}")
    return found[0]


def load_main(path: Path):
    """The ``main`` generator function of the script at ``path``."""
    spec = importlib.util.spec_from_file_location(f"genloop_script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    main = getattr(module, "main", None)
    if not callable(main):
        raise typer.BadParameter(f"{path} defines no main() to run")
    return main


def parse_threads(text: str) -> dict:
    """``"Default=2,IO=2"`` -> ``{"Default": 2, "IO": 2}``."""
    sizes = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, count = part.partition("=")
        if not count.strip().isdigit() or int(count) < 1:
            raise typer.BadParameter(f"{part!r}: write DISPATCHER=THREADS, e.g. Default=2,IO=2")
        sizes[name.strip()] = int(count)
    return sizes


ScriptArg = typer.Argument(..., help="a file defining main(), or a lesson: 01 ... 09 or its name")


def step(script: str = ScriptArg,
         threads: str = typer.Option(",".join(f"{k}={v}" for k, v in DEFAULT_SIM_THREADS.items()),
                                     help="simulated worker threads per dispatcher"),
         auto: float = typer.Option(None, min=0, help="take a step every SECONDS without a key"),
         until: int = typer.Option(None, min=1, help="run without stopping up to step STEP"),
         record: Path = typer.Option(None, help="write the transcript (one block per step) to FILE")):
    """Step through SCRIPT's scheduler: one step per Enter, every worker simulated, virtual time."""
    path = find_script(script)
    main, sizes = load_main(path), parse_threads(threads)

    def restart():
        return Stepper(main, threads=sizes)

    try:
        stepper = restart()
    except TypeError as e:       # main is a plain function, not a generator
        typer.echo(f"cannot step {path.name}: {e}", err=True)
        raise typer.Exit(1)
    # markup off: task names and "[state]" are text, not rich tags
    console = Console(width=None if sys.stdout.isatty() else 110, markup=False, highlight=False)
    with open(record, "w") if record else contextlib.nullcontext() as transcript:
        session = Session(stepper, path, console, record=transcript, restart=restart)
        raise typer.Exit(session.run(sys.stdin, auto=auto, until=until))


def trace(script: str = ScriptArg,
          out: Path = typer.Option(Path("trace.json"), help="the Trace Event Format file to write"),
          html: Path = typer.Option(None, help="also write a self-contained HTML timeline here"),
          threads: str = typer.Option("", help="worker threads, e.g. Default=4,IO=8")):
    """Run SCRIPT with real threads and real time, tracing every step (open it in ui.perfetto.dev)."""
    path = find_script(script)
    main = load_main(path)
    sizes = parse_threads(threads)
    if set(sizes) - {"Default", "IO"}:
        raise typer.BadParameter("only the Default and IO pools can be sized for a real run")
    status = 0
    with ChromeTracer(out, name=f"genloop trace {path.name}") as tracer:
        try:
            result = run(main, instruments=[tracer], default_threads=sizes.get("Default"),
                         io_threads=sizes.get("IO"))
            typer.echo(f"main returned {result!r}")
        except Exception as e:  # noqa: BLE001 - the script's own error, reported; the trace still helps
            typer.echo(f"main raised {e!r}", err=True)
            status = 1
        except Cancelled:
            typer.echo("main was cancelled (by the monitor's cancel, or by itself)", err=True)
            status = 1
        except KeyboardInterrupt:
            typer.echo("interrupted (Ctrl-C): the trace holds what ran until then", err=True)
            status = INTERRUPTED
    events = tracer.trace()["traceEvents"]
    tracks = sum(e["ph"] == "M" and e["name"] == "thread_name" and e["tid"] < TASK_TRACKS for e in events)
    steps = sum(e["ph"] == "X" and e["cat"] == "step" for e in events)
    typer.echo(f"wrote {out}: {steps} steps on {tracks} threads, {sum(e['ph'] == 's' for e in events)} "
               "wake-up arrows; open it in https://ui.perfetto.dev or chrome://tracing")
    if html:
        html.write_text(timeline.render(tracer.trace(), f"genloop trace of {path.name}"))
        typer.echo(f"wrote {html}: open it in a browser (no network needed)")
    raise typer.Exit(status)


def monitor(port: int = typer.Option(None, envvar="GENLOOP_MONITOR_PORT",
                                     help="a monitor on this TCP port (run(..., monitor=PORT)); its token is read for you"),
            socket_path: str = typer.Option(None, "--socket", help="a monitor on this Unix socket"),
            pid: int = typer.Option(None, help="the program whose monitor to talk to"),
            host: str = typer.Option("127.0.0.1", help="the program's host, with --port (loopback)")):
    """Talk to the monitor of a running program (run(..., monitor=True) or GENLOOP_MONITOR=1).

    Without an option: the one program of yours running a monitor.
    Commands: ps, where ID, tree, cancel ID, stats, help, quit. Reads them
    from the keyboard or from a pipe: echo ps | genloop monitor
    """
    try:
        conn = connect_monitor(path=socket_path, pid=pid, port=port, host=host, timeout=MONITOR_TIMEOUT)
    except (OSError, LookupError) as e:
        where = f"{host}:{port}" if port is not None else socket_path or (f"pid {pid}" if pid else "this machine")
        typer.echo(f"no monitor answers on {where} ({getattr(e, 'strerror', None) or e}); start the program with "
                   "GENLOOP_MONITOR=1 or run(..., monitor=True)", err=True)
        raise typer.Exit(1)
    interactive = sys.stdin.isatty()
    with conn:
        while _relay(conn):
            try:       # bytes from a pipe: whatever they are, they cannot break the client
                line = input().encode(errors="replace") if interactive else sys.stdin.buffer.readline()
            except EOFError:
                break
            if not interactive:
                if not line:
                    break
                sys.stdout.write(line.rstrip(b"\n").decode(errors="replace") + "\n")
            conn.sendall(line.strip() + b"\n")
    typer.echo("")


def _relay(conn) -> bool:
    """Print what the monitor says up to its prompt; False once it has closed the connection."""
    data = b""
    while not data.endswith(PROMPT):
        try:
            chunk = conn.recv(65536)
        except (socket.timeout, ConnectionError):
            chunk = b""
        if not chunk:
            sys.stdout.write(data.decode(errors="replace"))
            return False
        data += chunk
    sys.stdout.write(data.decode(errors="replace"))
    sys.stdout.flush()
    return True
