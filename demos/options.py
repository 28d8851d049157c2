"""The command-line options the demos share, declared once (typer reads the annotations)."""
from typing import Annotated, Literal

import typer

HOST = "127.0.0.1"
PORT = 8080

Host = Annotated[str, typer.Option(help="Address to listen on.")]
Port = Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port).")]
Mode = Annotated[Literal["http", "echo"], typer.Option(
    help="http: hello world over HTTP/1.1 with keep-alive; echo: every line sent comes back.")]
Workers = Annotated[int, typer.Option(min=1, help="Threads in the worker pool.")]
Verbose = Annotated[bool, typer.Option("--verbose", help="Tell who serves every connection, not only the first few.")]


def try_it(url: str, mode: str = "http") -> str:
    """The line that shows how to talk to a server in ``mode``."""
    if mode == "echo":
        host, port = url.removeprefix("http://").rsplit(":", 1)
        return f"try:  printf 'hello\\n' | nc {host} {port}"
    return f"try:  curl -i {url}/"
