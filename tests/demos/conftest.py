"""Fixtures for the demo tests."""
import pytest

from tests.demos.demo_helpers import SMALL_PRODUCTS, SMALL_USERS


@pytest.fixture(scope="session")
def small_db(tmp_path_factory):
    """A small search database, generated once per test session."""
    from genloop.demos.search import data
    return data.ensure(tmp_path_factory.mktemp("search") / "search.db", users=SMALL_USERS,
                       products=SMALL_PRODUCTS)
