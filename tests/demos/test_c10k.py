"""c10k: N connections held on a style are all answered; a thread server pays a thread for each."""
import pytest

from genloop.demos import c10k
from tests.demos.demo_helpers import children, wait_until

CONNECTIONS = 60


@pytest.mark.parametrize("style", ["coroutines", "threads"])
def test_every_connection_is_answered_and_everything_goes_at_the_end(style):
    before = set(children())
    with c10k.hold(style, CONNECTIONS) as held:
        assert (held.connected, held.answered) == (CONNECTIONS, CONNECTIONS)
        assert held.memory_after > 0 and held.memory_before > 0
        if style == "threads":
            assert held.threads > CONNECTIONS, "a thread per connection"
        else:
            assert held.threads < 10, "no thread per connection"
        assert f"{CONNECTIONS} of {CONNECTIONS} connections answered" in held.summary()
    assert wait_until(lambda: set(children()) <= before), "the server process outlived the demo"


@pytest.mark.parametrize("style, connections, message", [
    ("gopher", 10, "unknown style"), ("coroutines", 0, "at least 1"), ("fork", 5_000, "at most")])
def test_requests_it_will_not_make(style, connections, message):
    with pytest.raises(ValueError, match=message):
        c10k.check(style, connections)
