"""A WSGI server in the reactor shape: connections on the kernel, the app on a pool of threads.

``server = yield from serve_wsgi(app, "127.0.0.1", 8000, threads=8)`` inside
``run``; the ``genloop serve`` command builds on it. See docs/serve.md.
"""
from .body import BODY_BUFFER, SPOOL_SIZE
from .request import MAX_BODY
from .response import OUTPUT_HIGH_WATER, FileWrapper
from .server import APP_TIMEOUT, DEFAULT_THREADS, IO_TIMEOUT, KEEP_ALIVE, MAX_DRAIN, WsgiService, serve_wsgi

__all__ = ["serve_wsgi", "WsgiService", "FileWrapper", "DEFAULT_THREADS", "BODY_BUFFER", "SPOOL_SIZE", "MAX_BODY",
           "KEEP_ALIVE", "APP_TIMEOUT", "IO_TIMEOUT", "OUTPUT_HIGH_WATER", "MAX_DRAIN"]
