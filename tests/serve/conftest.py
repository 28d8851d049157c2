"""The serve tests need the test extra's frameworks and clients."""
import pytest

pytest.importorskip("httpx")
