"""genloop's networking: non-blocking sockets, buffered streams, TCP and HTTP servers."""
from .http import Headers, Request, Response, serve_http
from .socket import Socket
from .stream import DEFAULT_LIMIT, IncompleteRead, LimitOverrun, Stream
from .tcp import Server, listen, open_connection, serve_tcp
from .workers import run_workers

__all__ = ["Socket", "Stream", "IncompleteRead", "LimitOverrun", "DEFAULT_LIMIT", "Server",
           "listen", "open_connection", "serve_tcp", "serve_http", "Request", "Response", "Headers",
           "run_workers"]
