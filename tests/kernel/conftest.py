"""Kernel test configuration: a leak check after every test (the ``concurrency`` marker is pyproject's)."""
import pytest

from genloop.kernel import current_kernel
from tests.kernel.kernel_helpers import thread_names


@pytest.fixture(autouse=True)
def _nothing_survives_run():
    """After every test: no kernel left on this thread, no genloop worker alive."""
    yield
    assert current_kernel() is None, "a kernel is still registered on the test thread"
    left = thread_names("genloop-")
    assert not left, f"genloop threads survived run(): {left}"
