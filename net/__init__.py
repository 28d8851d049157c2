"""genloop's networking: non-blocking sockets, buffered streams, TCP, Unix, TLS, UDP and HTTP servers."""
from .http import Headers, Request, Response, serve_http
from .socket import Socket
from .stream import DEFAULT_LIMIT, IncompleteRead, LimitOverrun, Stream
from .tcp import Server, listen, open_connection, serve_tcp
from .tls import TLSTransport, start_tls
from .udp import DatagramEndpoint, open_datagram
from .unix import open_unix_connection, serve_unix
from .workers import run_workers

__all__ = ["Socket", "Stream", "IncompleteRead", "LimitOverrun", "DEFAULT_LIMIT", "Server",
           "listen", "open_connection", "serve_tcp", "serve_http", "Request", "Response", "Headers",
           "run_workers", "serve_unix", "open_unix_connection", "start_tls", "TLSTransport",
           "open_datagram", "DatagramEndpoint"]
