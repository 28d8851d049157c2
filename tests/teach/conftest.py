"""Teaching-tool tests: nothing a test started may outlive it."""
import threading

import pytest


@pytest.fixture(autouse=True)
def _no_thread_survives():
    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith("genloop-")]
    assert not left, f"genloop threads survived: {left}"
