"""The search demo: the three front styles give the same answers, and say what went wrong alike."""
import json
import urllib.error
import urllib.request

import pytest

import genloop.demos.search as search
from genloop.demos.search import backends, data
from genloop.demos.search.front import STYLES
from genloop.demos.serving import Serving
from genloop.kernel import VirtualClock, gather, run
from tests.demos.demo_helpers import DEADLINE, SMALL_PRODUCTS, SMALL_USERS, serving

QUERIES = ["/search?q=chair&user=42", "/search?q=oak&user=7", "/search?q=Rustic+Lamp&user=150",
           "/search?q=oak+chair&user=1", "/search?q=nothing-like-it&user=3"]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=DEADLINE) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def running(style, db, **options):
    return serving(search.serve, style=style, db=db, users=SMALL_USERS, products=SMALL_PRODUCTS, **options)


def test_the_three_styles_give_identical_answers(small_db):
    answers = {}
    for style in STYLES:
        with running(style, small_db) as server:
            answers[style] = [get(server.url + path) for path in QUERIES]
    assert answers["blocking"] == answers["callbacks"] == answers["coroutines"]
    found = [json.loads(body) for status, body in answers["coroutines"]]
    assert all(status == 200 for status, _ in answers["coroutines"])
    assert found[0]["user"]["id"] == 42 and found[0]["products"], "a common word finds products"
    assert all(p["stock"] > 0 and "chair" in p["name"] for p in found[0]["products"])
    assert found[-1]["products"] == []


@pytest.mark.parametrize("style", list(STYLES))
def test_errors_are_answered_in_json(style, small_db):
    with running(style, small_db) as server:
        status, body = get(server.url + f"/search?q=chair&user={SMALL_USERS + 1}")
        assert status == 404 and json.loads(body) == {"error": f"no user {SMALL_USERS + 1}"}
        assert get(server.url + "/search?user=1")[0] == 400
        assert get(server.url + "/search?q=chair&user=abc")[0] == 400
        assert get(server.url + "/elsewhere")[0] == 404


def test_a_backend_alone_and_a_front_pointed_at_it(small_db):
    with running("coroutines", small_db, role="product") as product:
        # Not leak-checked on its own: the backend's IO threads come and go meanwhile.
        with Serving(search.serve, port=0, style="coroutines", db=small_db, users=SMALL_USERS,
                     products=SMALL_PRODUCTS, backends_at={"product": ("127.0.0.1", product.port)}) as server:
            assert server.ready.backends["product"] == ("127.0.0.1", product.port)
            status, body = get(server.url + QUERIES[0])
    with running("coroutines", small_db) as alone:
        assert get(alone.url + QUERIES[0]) == (status, body)


def test_generated_data_is_deterministic_and_cached(tmp_path, small_db):
    again = data.ensure(tmp_path / "again.db", users=SMALL_USERS, products=SMALL_PRODUCTS)
    one, two = data.Catalog(small_db), data.Catalog(again)
    try:
        assert one.user(42) == two.user(42)
        assert one.search("lamp", "FR", 10) == two.search("lamp", "FR", 10)
    finally:
        one.close()
        two.close()
    modified = again.stat().st_mtime_ns
    assert data.ensure(again, users=SMALL_USERS, products=SMALL_PRODUCTS) == again
    assert again.stat().st_mtime_ns == modified, "a matching file is reused, not rebuilt"


def test_a_foreign_file_is_not_overwritten(tmp_path):
    foreign = tmp_path / "notes.db"
    foreign.write_text("my notes")
    with pytest.raises(ValueError, match="not a genloop search database"):
        data.ensure(foreign, users=10, products=10)
    assert foreign.read_text() == "my notes"


def test_queries_asked_together_share_one_trip_and_each_waits_the_latency(monkeypatch):
    batches = []
    run_all = backends._run_all
    monkeypatch.setattr(backends, "_run_all", lambda batch: batches.append(len(batch)) or run_all(batch))

    def double(n):
        if n < 0:
            raise LookupError(f"no {n}")
        return 2 * n

    def main(clock):
        trips = backends.Trips(latency=0.05)
        start = clock.now()
        together = yield from gather(*(trips.run(double, n) for n in range(5)))
        waited = clock.now() - start
        with pytest.raises(LookupError):
            yield from trips.run(double, -1)
        return together, waited

    clock = VirtualClock()
    together, waited = run(main, clock, clock=clock)
    assert together == [0, 2, 4, 6, 8] and waited >= 0.05
    assert batches == [5, 1]
