"""The ``genloop`` command: demos, stepping, traces and benchmarks."""
import importlib

import typer

app = typer.Typer(help="genloop: a coroutine kernel of plain generators, and the demos that teach it.",
                  no_args_is_help=True, add_completion=False)
demo_app = typer.Typer(help="Run the teaching demos.", no_args_is_help=True)
app.add_typer(demo_app, name="demo")

#: name -> (module, one line on the idea it shows). Each module has ``demo(**options)``.
DEMOS = {
    "hello": ("demos.hello", "coroutines hopping across Main, Default and IO; prints the thread of every step"),
}


@demo_app.command("list")
def demo_list():
    """Every demo, with the idea it shows."""
    width = max(map(len, DEMOS))
    for name, (_, idea) in DEMOS.items():
        typer.echo(f"{name:<{width}}  {idea}")


@demo_app.command("run")
def demo_run(name: str = typer.Argument(..., help="a name from `genloop demo list`")):
    """Run one demo."""
    if name not in DEMOS:
        typer.echo(f"no demo named {name!r}; try one of: {', '.join(DEMOS)}", err=True)
        raise typer.Exit(2)
    importlib.import_module(DEMOS[name][0]).demo(echo=typer.echo)


from demos import teach_cli  # noqa: E402 - the teaching commands live in their own module
app.command("step")(teach_cli.step)
app.command("trace")(teach_cli.trace)
app.command("monitor")(teach_cli.monitor)


if __name__ == "__main__":
    app()
