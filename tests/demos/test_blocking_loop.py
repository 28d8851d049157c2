"""blocking-loop: /slow on Main makes /fast wait for it (and the watchdog says so); on a dispatcher it does not."""
import threading
import urllib.request

import pytest

from genloop.demos import blocking_loop
from tests.demos.demo_helpers import DEADLINE, serving

#: Long enough that a /fast sent once /slow has started is served before /slow ends, if Main is free.
SECONDS = 1.0


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=DEADLINE) as response:
        return response.read()


def fast_while_slow(server) -> list:
    """Send /slow, then /fast once the slow work has begun; return what the app did, in order."""
    slow = threading.Thread(target=get, args=(server.url + "/slow",))
    slow.start()
    try:
        assert server.ready.slow_started.wait(DEADLINE)
        assert get(server.url + "/fast") == b"fast\n"
    finally:
        slow.join()
    return server.ready.events


def test_slow_work_on_main_stalls_the_fast_endpoint_and_is_reported():
    with serving(blocking_loop.serve, slow_on="main", seconds=SECONDS) as server:
        assert fast_while_slow(server) == ["slow-start", "slow-end", "fast"]
        assert server.ready.reports, "the watchdog reported no slow step"
        assert "blocking_loop.py" in server.ready.reports[0]


@pytest.mark.parametrize("place", ["default", "io"])
def test_slow_work_on_a_dispatcher_leaves_the_fast_endpoint_fast(place):
    with serving(blocking_loop.serve, slow_on=place, seconds=SECONDS) as server:
        assert fast_while_slow(server) == ["slow-start", "fast", "slow-end"]
        assert server.ready.reports == []


def test_an_unknown_place_is_refused():
    with pytest.raises(ValueError, match="--slow-on"):
        blocking_loop.serve("127.0.0.1", 0, slow_on="gpu")
