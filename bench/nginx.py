"""nginx as the ceiling row: what a C event loop does with the same hello world.

    python -m bench.nginx --port P        # prints READY <port>, serves until killed

Writes a config into a temporary directory (pid file and error log there too)
and runs `nginx` in the foreground: one worker process, no access log,
`return 200 "Hello, world!"`. It follows the `bench.peers` contract so the
harness treats it like any peer; echo mode is not offered.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.peers import cli
from bench.peers.work import BACKLOG

START_TIMEOUT = 10.0  # seconds for nginx to accept connections
MAX_CONNECTIONS = 65536  # worker_connections: enough for c10k and then some
NGINX = shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/usr/bin:/usr/local/bin")

CONFIG = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile {max_connections};
events {{
    worker_connections {max_connections};
}}
http {{
    access_log off;
    # The Python peers never close a keep-alive connection; by default nginx
    # does after 1000 requests, which would make wrk reconnect.
    keepalive_requests 4294967295;
    server {{
        listen {host}:{port} backlog={backlog};
        location / {{
            return 200 "Hello, world!";
        }}
    }}
}}
"""


def free_port(host: str) -> int:
    """nginx cannot listen on port 0 and tell us the port: pick one for it."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def wait_listening(host: str, port: int, nginx: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while nginx.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nginx did not start listening on {host}:{port} (see its error log above)")


def main() -> None:
    args = cli.parse_args(__doc__)
    if args.mode != "http":
        raise SystemExit("nginx: only --mode http is supported")
    if NGINX is None:
        raise SystemExit("nginx: not installed")
    port = args.port or free_port(args.host)
    # Stop nginx and remove the temporary directory when the harness terminates us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as tmp:
        config = Path(tmp, "nginx.conf")
        config.write_text(CONFIG.format(dir=tmp, host=args.host, port=port, backlog=BACKLOG,
                                        max_connections=MAX_CONNECTIONS))
        nginx = subprocess.Popen([NGINX, "-p", tmp, "-c", str(config), "-e", f"{tmp}/error.log"])
        try:
            wait_listening(args.host, port, nginx)
            cli.announce(port)
            nginx.wait()
        finally:
            nginx.terminate()  # SIGTERM: nginx's fast shutdown
            nginx.wait()


if __name__ == "__main__":
    main()
