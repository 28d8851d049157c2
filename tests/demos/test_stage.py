"""Each server demo tells who serves a connection: the first few, or every one with --verbose."""
import http.client
import os
import re
import threading

import pytest

from genloop.demos.stage import FIRST_CONNECTIONS, Stage
from genloop.demos.styles import STYLES
from tests.demos.demo_helpers import DEADLINE, serving, wait_until

#: style -> a line its stage must tell for every connection it tells about
SAYS = {
    "fork": r"fork: 127\.0\.0\.1:\d+ -> child process pid (\d+) \(the parent is \d+\); \d+ children alive",
    "threads": r"threads: 127\.0\.0\.1:\d+ -> thread conn-\d+ \(native id \d+\); \d+ connection threads alive",
    "event-loop": r"event-loop: 127\.0\.0\.1:\d+ -> fd \d+, watched by epoll for EPOLLIN on the loop thread \S+",
    "reactor": r"reactor: fd \d+: the loop thread handed a request to reactor-worker_\d",
    "coroutines": r"coroutines: 127\.0\.0\.1:\d+ -> task #\d+ (tcp|http):\d+ on Main's thread \S+",
}


def hello(port):
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    try:
        client.request("GET", "/")
        assert client.getresponse().read() == b"Hello, world!"
    finally:
        client.close()


@pytest.mark.parametrize("style", list(STYLES))
def test_the_first_connections_are_told(style):
    lines, lock = [], threading.Lock()

    def echo(line):
        with lock:
            lines.append(line)

    with serving(STYLES[style][0], mode="http", stage=Stage(echo)) as server:
        for _ in range(FIRST_CONNECTIONS + 2):
            hello(server.port)
        assert wait_until(lambda: sum(bool(re.fullmatch(SAYS[style], line)) for line in lines) == FIRST_CONNECTIONS)
    told = [m for line in lines if (m := re.fullmatch(SAYS[style], line))]
    assert len(told) == FIRST_CONNECTIONS, lines
    assert f"(the first {FIRST_CONNECTIONS} connections told; --verbose tells about every one)" in lines
    if style == "fork":
        assert all(int(m.group(1)) != os.getpid() for m in told)
    if style in ("event-loop", "reactor"):
        assert any(re.fullmatch(rf"{style}: epoll\.poll -> fd \d+ EPOLLIN", line) for line in lines)


def test_verbose_tells_every_connection_and_none_is_told_without_a_stage():
    lines = []
    with serving(STYLES["threads"][0], mode="http", stage=Stage(lines.append, verbose=True)) as server:
        for _ in range(FIRST_CONNECTIONS + 2):
            hello(server.port)
        assert wait_until(lambda: len(lines) == FIRST_CONNECTIONS + 2)
    assert not any("--verbose" in line for line in lines)
