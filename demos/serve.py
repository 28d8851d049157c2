"""``genloop serve pkg.module:app``: a WSGI app served the reactor way, with gunicorn's options.

The connections live on the kernel (``genloop.net.wsgi``); the app runs on a
pool of ``--threads`` threads; ``--workers`` processes share each port with
SO_REUSEPORT (``run_workers``). SIGTERM and SIGINT stop gracefully: stop
accepting, let requests in flight finish within ``--graceful-timeout``,
close idle connections, exit 0.
"""
import importlib
import logging
import os
import socket
import ssl
import sys
from dataclasses import dataclass

import typer

from genloop.kernel import Dispatchers, sleep, spawn
from genloop.kernel.signals import request_stop, stopping
from genloop.net import run_workers
from genloop.net.tcp import DEFAULT_BACKLOG, listen
from genloop.net.workers import INTERRUPTED
from genloop.net.wsgi import APP_TIMEOUT, DEFAULT_THREADS, KEEP_ALIVE, serve_wsgi

log = logging.getLogger("genloop.serve")

#: gunicorn's: the default address and the seconds a graceful stop may take.
DEFAULT_BIND = "127.0.0.1:8000"
GRACEFUL_TIMEOUT = 30.0
#: Exit codes: a graceful stop, a failure, an app that cannot be imported (gunicorn's APP_LOAD_ERROR).
EXIT_OK, EXIT_FAILED, EXIT_APP_LOAD = 0, 1, 4
#: IO's threads when --threads asks for no more (DESIGN: max(64, cores)); the app's pool is a view of IO.
IO_THREADS = max(64, os.cpu_count() or 1)
#: Seconds between a worker's checks that its parent is still alive.
PARENT_CHECK = 1.0


def load_app(spec: str):
    """``pkg.module:name`` (or ``pkg.module``, meaning ``:application``; ``:factory()`` calls it),
    imported with the current directory first on ``sys.path``, as gunicorn does."""
    module_name, _, name = spec.partition(":")
    name = name or "application"
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    call = name.endswith("()")
    app = getattr(module, name.removesuffix("()"))
    if call:
        app = app()
    if not callable(app):
        raise TypeError(f"{spec} is not callable")
    return app


def parse_bind(bind: str) -> tuple:
    """``("unix", path)`` or ``("tcp", host, port)`` from gunicorn's ``--bind`` forms."""
    if bind.startswith("unix:"):
        return ("unix", bind[5:])
    if bind.startswith("["):                    # [::1]:8000
        host, _, port = bind[1:].partition("]")
        port = port.lstrip(":")
    elif bind.count(":") == 1:
        host, port = bind.split(":")
    elif bind.isdigit():
        host, port = "127.0.0.1", bind
    else:
        host, port = bind, ""
    return ("tcp", host or "0.0.0.0", int(port or 8000))


@dataclass
class Config:
    app: object
    binds: list                                 # parse_bind tuples; unix ones carry their bound socket
    threads: int
    workers: int
    timeout: float
    graceful_timeout: float
    keep_alive: float
    access_log: str | None
    tls: ssl.SSLContext | None
    script_name: str = ""
    spool_chunked: bool = False
    drained: bool = False                       # set once a graceful stop has let every server drain


def _open_log(path, workers):
    if path is None:
        return None
    if path == "-":
        return sys.stdout
    # Several processes append to one file: a line per write keeps their lines whole.
    return open(path, "a", buffering=1 if workers > 1 else -1, encoding="utf-8")


def _serve_main(config: Config):
    """One process's kernel: listen on every bind, serve until a graceful stop has drained every server.

    The stop is ``run``'s (SIGTERM, SIGINT, ``request_stop``): each server's
    stop hook closes its listener and lets requests in flight finish within
    its ``stop_grace``, ``--graceful-timeout``.
    """
    # A view of IO, not a pool of its own: IO's threads take one task at a time,
    # where a fixed pool's take batches (fine for CPU steps, unfair for blocking calls).
    pool = Dispatchers.IO.limited(config.threads)
    access_log = _open_log(config.access_log, config.workers)
    limits = {"keep_alive": config.keep_alive, "app_timeout": config.timeout, "stop_grace": config.graceful_timeout,
              "spool_chunked": config.spool_chunked}
    servers = []
    for bind in config.binds:
        if bind[0] == "unix":
            server = yield from serve_wsgi(config.app, pool=pool, sock=bind[2], ssl=config.tls, access_log=access_log,
                                           script_name=config.script_name, multiprocess=config.workers > 1,
                                           **limits)
            where = f"unix:{bind[1]}"
        else:
            server = yield from serve_wsgi(config.app, bind[1], bind[2], pool=pool, ssl=config.tls,
                                           reuse_port=config.workers > 1, access_log=access_log,
                                           script_name=config.script_name, multiprocess=config.workers > 1,
                                           **limits)
            where = f"{'https' if config.tls else 'http'}://{_host(bind[1])}:{server.port}"
        servers.append(server)
        log.info("Listening at: %s (pid %d, %d threads)", where, os.getpid(), config.threads)
    if config.workers > 1:
        yield from spawn(_watch_parent, os.getppid(), name="serve-parent-watch")
    yield from stopping().wait()
    log.info("stopping gracefully (up to %g s)", config.graceful_timeout)
    for server in servers:
        yield from server.serve_forever()       # returns once its stop hook has drained it
    config.drained = True
    busy = sum(s.service.jobs for s in servers)
    if access_log is not None:
        access_log.flush()
    if busy:
        # A thread cannot be interrupted: leave without waiting for the app calls still running.
        log.warning("%d app calls still running after %g s; exiting without them", busy, config.graceful_timeout)
        logging.shutdown()
        sys.stdout.flush()
        os._exit(EXIT_OK)
    log.info("stopped")


def _watch_parent(parent):
    """A worker whose parent died (killed outright, no signal passed on) stops too, as gunicorn's do."""
    while os.getppid() == parent:
        yield from sleep(PARENT_CHECK)
    log.warning("the parent process %d is gone", parent)
    request_stop()


def _host(host):
    return f"[{host}]" if ":" in host else host


def _tls_context(certfile, keyfile):
    if certfile is None:
        if keyfile is not None:
            raise typer.BadParameter("--keyfile needs --certfile")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


def _free_port(host):
    """A port every worker can then bind with SO_REUSEPORT (``:0`` with several workers)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((host, 0))
        return s.getsockname()[1]


def serve(
    app: str = typer.Argument(..., metavar="MODULE:APP", help="the WSGI app, as pkg.module:name (name() calls a factory)"),
    bind: list[str] = typer.Option([DEFAULT_BIND], "--bind", "-b", help="HOST:PORT or unix:PATH; repeat for several"),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="processes, sharing each port (SO_REUSEPORT)"),
    threads: int = typer.Option(DEFAULT_THREADS, "--threads", min=1, help="threads per process the app runs on"),
    timeout: float = typer.Option(APP_TIMEOUT, "--timeout", "-t", min=0,
                                  help="seconds an app may take to start its response before the client gets 503 (0: no limit)"),
    graceful_timeout: float = typer.Option(GRACEFUL_TIMEOUT, "--graceful-timeout", min=0,
                                           help="seconds requests in flight get to finish after SIGTERM or SIGINT"),
    keep_alive: float = typer.Option(KEEP_ALIVE, "--keep-alive", min=0.1, help="seconds an idle connection is kept"),
    access_log: str = typer.Option(None, "--access-log", "--access-logfile", help="combined log format to FILE, or - for stdout"),
    certfile: str = typer.Option(None, "--certfile", help="TLS certificate (PEM): serve HTTPS"),
    keyfile: str = typer.Option(None, "--keyfile", help="TLS private key (PEM), if not in --certfile"),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning, error"),
    spool_chunked: bool = typer.Option(False, "--spool-chunked",
                                       help="read a chunked request body whole before the app runs, so it gets "
                                            "CONTENT_LENGTH (Django needs it)"),
):
    """Serve a WSGI app: connections on the kernel, the app on a pool of threads."""
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
    try:
        wsgi_app = load_app(app)
    except Exception as e:                                   # noqa: BLE001 - any import error is the app's
        log.error("cannot load %s: %s: %s", app, type(e).__name__, e)
        raise typer.Exit(EXIT_APP_LOAD) from None
    config = None
    try:
        binds = []
        for b in bind:
            parsed = parse_bind(b)
            if parsed[0] == "unix":                          # bound once here, shared by every worker
                parsed = (*parsed, listen(path=parsed[1], backlog=DEFAULT_BACKLOG).sock)
            elif parsed[2] == 0 and workers > 1:
                parsed = (parsed[0], parsed[1], _free_port(parsed[1]))
            binds.append(parsed)
        config = Config(wsgi_app, binds, threads, workers, timeout, graceful_timeout, keep_alive, access_log,
                        _tls_context(certfile, keyfile), script_name=os.environ.get("SCRIPT_NAME", ""),
                        spool_chunked=spool_chunked)
        codes = run_workers(_serve_main, config, workers=workers, io_threads=max(IO_THREADS, threads))
    except (OSError, ValueError) as e:
        log.error("%s", e)
        raise typer.Exit(EXIT_FAILED) from None
    except KeyboardInterrupt:
        # run() ends a SIGINT stop with KeyboardInterrupt, drained or cut short by a second SIGINT.
        raise typer.Exit(EXIT_OK if config is not None and config.drained else INTERRUPTED) from None
    if workers > 1 and any(code not in (EXIT_OK, INTERRUPTED) for code in codes):
        log.error("worker exit codes: %s", codes)
        raise typer.Exit(EXIT_FAILED)
