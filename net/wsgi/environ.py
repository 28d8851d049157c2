"""The PEP 3333 environ of one request, built from what the connection parsed.

Strings in the environ are "native strings" as PEP 3333 says: the raw bytes
of the request decoded as latin-1, so an app gets back the exact bytes with
``.encode("latin-1")`` (``PATH_INFO`` is percent-decoded first, as CGI does).
"""
import io
import sys
from urllib.parse import unquote_to_bytes

from .body import SpooledBody

#: Header names that become CGI variables without the ``HTTP_`` prefix.
_CGI_NAMES = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_CGI_KEYS = frozenset(_CGI_NAMES.values())


def base_environ(*, scheme: str, server_name: str, server_port: str, script_name: str = "",
                 multiprocess: bool = False, file_wrapper=None) -> dict:
    """The keys every request of one listener shares; each request copies it."""
    environ = {
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        # wsgi.input ends where the body does, chunked or not (see body.py),
        # so reading it to its end is safe (werkzeug's and gunicorn's name).
        "wsgi.input_terminated": True,
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "SCRIPT_NAME": script_name.rstrip("/"),
        "SERVER_SOFTWARE": "genloop",
    }
    if file_wrapper is not None:
        environ["wsgi.file_wrapper"] = file_wrapper
    return environ


def split_target(target: bytes) -> tuple:
    """``(path, query)`` bytes of a request-target (origin or absolute form)."""
    if not target.startswith(b"/"):            # absolute-form, as sent to proxies
        rest = target.partition(b"://")[2]
        slash = rest.find(b"/")
        target = rest[slash:] if slash >= 0 else b"/"
    path, _, query = target.partition(b"?")
    return path, query


def build_environ(base: dict, request, peer) -> dict:
    """One request's environ: ``request`` is a ``net.http.Request`` whose ``body`` is its ``BodyPipe``
    or ``SpooledBody`` (None without a body), ``peer`` the client's address."""
    environ = base.copy()
    target, body = request.target, request.body
    path, query = split_target(target)
    path_info = (unquote_to_bytes(path) if b"%" in path else path).decode("latin-1")
    script_name = base["SCRIPT_NAME"]
    if script_name and (path_info == script_name or path_info.startswith(script_name + "/")):
        path_info = path_info[len(script_name):]
    environ["REQUEST_METHOD"] = request.method
    environ["PATH_INFO"] = path_info
    environ["QUERY_STRING"] = query.decode("latin-1")
    environ["RAW_URI"] = environ["REQUEST_URI"] = target.decode("latin-1")
    environ["SERVER_PROTOCOL"] = "HTTP/" + request.version
    if body is None:
        environ["wsgi.input"] = io.BytesIO()
    elif type(body) is SpooledBody:             # read whole: its length is known though it came chunked
        environ["wsgi.input"] = body.file
        environ["CONTENT_LENGTH"] = str(body.received)
    else:
        environ["wsgi.input"] = io.BufferedReader(body)
    if peer:
        environ["REMOTE_ADDR"] = peer[0]
        environ["REMOTE_PORT"] = str(peer[1])
    else:                                       # a Unix socket has no peer address
        environ["REMOTE_ADDR"] = ""
    for name, value in request.headers:
        name = name.lower()
        key = _CGI_NAMES.get(name)
        if key is None:
            if b"_" in name:
                # X_Forwarded_For would land on the same key as X-Forwarded-For:
                # drop it so a client cannot forge a proxy's header (as nginx does).
                continue
            key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        value = value.decode("latin-1")
        old = environ.get(key)
        environ[key] = value if old is None or key in _CGI_KEYS else old + "," + value
    return environ
