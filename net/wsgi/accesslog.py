"""The access log in the combined log format (Apache's, nginx's default, gunicorn's ``--access-logfile``)."""
import time


class AccessLog:
    """Writes one line per response to ``stream`` (a text file); buffered: the server flushes it once a sweep.

    ``host - user [time] "request line" status bytes "referer" "user-agent"``,
    with ``-`` for what is missing, as Apache's ``%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"``.
    """

    def __init__(self, stream):
        self.stream = stream
        self._stamp = (0, "")

    def _time(self) -> str:
        now = int(time.time())
        if self._stamp[0] != now:
            self._stamp = (now, time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(now)))
        return self._stamp[1]

    def log(self, peer, method: str, target: bytes, version: str, status: int, size: int, headers) -> None:
        referer = agent = "-"
        for name, value in headers:
            lower = name.lower()
            if lower == b"referer":
                referer = value.decode("latin-1")
            elif lower == b"user-agent":
                agent = value.decode("latin-1")
        line = (f'{peer[0] if peer and peer[0] else "-"} - - [{self._time()}] '
                f'"{method} {target.decode("latin-1")} HTTP/{version}" {status} {size or "-"} '
                f'"{_quote(referer)}" "{_quote(agent)}"\n')
        self.stream.write(line)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass   # a closed or broken log stream must not stop the server


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
