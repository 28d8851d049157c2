"""The ``genloop`` command: demos, stepping, traces and benchmarks."""
import functools
import importlib
import inspect

import typer

from genloop import __version__
from genloop.demos import benchmarks, serving
from genloop.kernel import Cancelled

app = typer.Typer(help="genloop: a coroutine kernel of plain generators, and the demos that teach it.",
                  no_args_is_help=True, add_completion=False)
demo_app = typer.Typer(help="Run the teaching demos.", no_args_is_help=True)
app.add_typer(demo_app, name="demo")
app.add_typer(benchmarks.app, name="bench")
run_app = typer.Typer(help="Run one demo (servers run until Ctrl-C).", no_args_is_help=True)
demo_app.add_typer(run_app, name="run")

#: name -> (where its ``demo(echo, **options)`` is: "module" or "module:function",
#: one line on the idea it shows). The options become the command's options.
DEMOS = {
    "hello": ("genloop.demos.hello", "coroutines hopping across Main, Default and IO; prints the thread of every step"),
    "fork": ("genloop.demos.styles:fork", "a process per connection (os.fork): isolated, but a fork and megabytes per client"),
    "threads": ("genloop.demos.styles:threads", "a thread per connection: plain blocking code, a stack and a switch per client"),
    "event-loop": ("genloop.demos.styles:event_loop_demo", "one thread and a bare epoll loop: every socket, no thread each"),
    "reactor": ("genloop.demos.styles:reactor_demo", "an epoll loop hands requests to a worker pool and gets replies back"),
    "coroutines": ("genloop.demos.styles:coroutines_demo", "the same server on genloop: sequential handlers, one thread"),
    "search": ("genloop.demos.search", "an HTTP front calling three RPC backends in turn: blocking, callbacks, coroutines"),
    "blocking-loop": ("genloop.demos.blocking_loop", "a slow handler on Main stalls every client; on a dispatcher it stalls none"),
    "c10k": ("genloop.demos.c10k", "holds N connections open on one style: how many are answered, memory per connection"),
}


def _command(target):
    """``demo(echo, **options)`` as a typer command whose options are the demo's."""
    module, _, function = target.partition(":")
    demo = getattr(importlib.import_module(module), function or "demo")
    signature = inspect.signature(demo)

    @functools.wraps(demo)
    def command(**options):
        try:
            demo(echo=typer.echo, **options)
        except (OSError, ValueError, RuntimeError) as e:   # a port in use, a file not ours, too few files allowed
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None
        except Cancelled:                                  # e.g. `cancel 1` in the monitor
            typer.echo("stopped: the main task was cancelled", err=True)
            raise typer.Exit(1) from None

    command.__signature__ = signature.replace(
        parameters=[p for name, p in signature.parameters.items() if name != "echo"])
    return command


for _name, (_target, _idea) in DEMOS.items():
    run_app.command(_name, help=_idea)(_command(_target))


@run_app.callback()
def run_options(peer: bool = typer.Option(False, "--peer", hidden=True,
                                          help="print READY <port> once listening (see demos.measure.children)")) -> None:
    if peer:
        serving.on_listening.append(lambda port: print(f"READY {port}", flush=True))


@demo_app.command("list")
def demo_list() -> None:
    """Every demo, with the idea it shows."""
    width = max(map(len, DEMOS))
    for name, (_, idea) in DEMOS.items():
        typer.echo(f"{name:<{width}}  {idea}")


from genloop.demos import teach_cli  # noqa: E402 - the teaching commands live in their own module

app.command("step")(teach_cli.step)
app.command("trace")(teach_cli.trace)
app.command("monitor")(teach_cli.monitor)

from genloop.demos import serve  # noqa: E402 - the WSGI server's command

app.command("serve")(serve.serve)


def _version(show: bool):
    if show:
        typer.echo(f"genloop {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="Print genloop's version and exit.")):
    """genloop: a coroutine kernel of plain generators, and the demos that teach it."""


def main() -> None:
    """The console script and ``python -m genloop``."""
    app(prog_name="genloop")


if __name__ == "__main__":
    main()
