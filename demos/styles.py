"""The article's five server styles by name: the demos `fork` ... `coroutines`, and what the benches compare.

All five serve the same protocols through the same `serve(host, port, *,
mode, ready, stop)` entry (`demos.bare`), so they differ only in how they
wait for sockets. Only the reactor has a worker pool to size.
"""
from collections.abc import Callable

from genloop.demos import coroutines, event_loop, fork_server, reactor, thread_server
from genloop.demos.options import HOST, PORT, Host, Mode, Port, Verbose, Workers, try_it
from genloop.demos.serving import serve_until_interrupt
from genloop.demos.stage import Stage

#: name -> (its serve function, what it is, in a few words)
STYLES = {
    "fork": (fork_server.serve, "a process per connection"),
    "threads": (thread_server.serve, "a thread per connection"),
    "event-loop": (event_loop.serve, "one thread, a bare epoll loop"),
    "reactor": (reactor.serve, "an epoll loop feeding a worker pool"),
    "coroutines": (coroutines.serve, "a task per connection on genloop"),
}


def _serve(style, echo, host, port, mode, verbose, **options):
    serve, what = STYLES[style]

    def banner(serving):
        return [f"{style}: {what}, {mode} on {serving.url}", try_it(serving.url, mode), "Ctrl-C to stop"]

    serve_until_interrupt(serve, host, port, echo=echo, banner=banner, mode=mode, stage=Stage(echo, verbose),
                          **options)


def fork(echo: Callable[[str], object] = print, host: Host = HOST, port: Port = PORT, mode: Mode = "http",
         verbose: Verbose = False) -> None:
    _serve("fork", echo, host, port, mode, verbose)


def threads(echo: Callable[[str], object] = print, host: Host = HOST, port: Port = PORT, mode: Mode = "http",
            verbose: Verbose = False) -> None:
    _serve("threads", echo, host, port, mode, verbose)


def event_loop_demo(echo: Callable[[str], object] = print, host: Host = HOST, port: Port = PORT, mode: Mode = "http",
                    verbose: Verbose = False) -> None:
    _serve("event-loop", echo, host, port, mode, verbose)


def reactor_demo(echo: Callable[[str], object] = print, host: Host = HOST, port: Port = PORT, mode: Mode = "http",
                 workers: Workers = reactor.DEFAULT_WORKERS, verbose: Verbose = False) -> None:
    _serve("reactor", echo, host, port, mode, verbose, workers=workers)


def coroutines_demo(echo: Callable[[str], object] = print, host: Host = HOST, port: Port = PORT, mode: Mode = "http",
                    verbose: Verbose = False) -> None:
    _serve("coroutines", echo, host, port, mode, verbose)
