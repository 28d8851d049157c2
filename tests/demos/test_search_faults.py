"""The search front survives a backend restart: fast 503s naming the backend, then right answers again.

The product backend (B) runs in a process of its own. Under load from a few
client threads it is killed (SIGKILL), then started again on the same port.
No request may hang; while B is away the front answers 503 naming it; once
it is back, without touching the front, the answers are the ones from before.
"""
import contextlib
import http.client
import json
import os
import signal
import threading
import time

import pytest

import genloop.demos.search as search
from genloop.demos import harness
from genloop.demos.search.front import STYLES
from tests.demos.demo_helpers import DEADLINE, SMALL_PRODUCTS, SMALL_USERS, serving, wait_until

QUERIES = ["/search?q=chair&user=42", "/search?q=lamp&user=7", "/search?q=oak&user=150"]
CLIENTS = 4
#: An answer slower than this counts as a hang: calls in flight must fail fast.
FAST = 2.0


class Load:
    """Client threads sending QUERIES in turn over keep-alive connections, recording every outcome."""

    def __init__(self, port: int):
        self.port = port
        self.records = []            # (started, status or exception name, body, seconds)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(n,)) for n in range(CLIENTS)]

    def _client(self, n):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE)
        i = n
        while not self.stop.is_set():
            path = QUERIES[i % len(QUERIES)]
            i += 1
            started = time.monotonic()
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                outcome = (response.status, response.read())
            except OSError as e:                 # a timeout here is a hang
                outcome = (type(e).__name__, b"")
                connection.close()
            with self.lock:
                self.records.append((started, path, *outcome, time.monotonic() - started))
        connection.close()

    def since(self, moment: float) -> list:
        with self.lock:
            return [r for r in self.records if r[0] >= moment]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        for t in self.threads:
            t.join()


def product_backend(db, port: int):
    return harness.launched("search", "--role", "product", "--port", str(port), "--db", str(db),
                            "--users", str(SMALL_USERS), "--products", str(SMALL_PRODUCTS))


@pytest.mark.parametrize("style", list(STYLES))
def test_the_front_survives_a_backend_restart(style, small_db):
    with contextlib.ExitStack() as stack:
        backend = stack.enter_context(product_backend(small_db, 0))
        front = stack.enter_context(serving(search.serve, style=style, db=small_db, users=SMALL_USERS,
                                            products=SMALL_PRODUCTS,
                                            backends_at={"product": ("127.0.0.1", backend.port)}))
        expected = {}
        for path in QUERIES:
            connection = http.client.HTTPConnection("127.0.0.1", front.port, timeout=DEADLINE)
            connection.request("GET", path)
            response = connection.getresponse()
            expected[path] = (response.status, response.read())
            connection.close()
        assert all(status == 200 for status, _ in expected.values())

        with Load(front.port) as load:
            assert wait_until(lambda: len(load.since(0)) >= 20), "no load"
            killed = time.monotonic()
            os.kill(backend.pid, signal.SIGKILL)
            assert wait_until(lambda: any(r[2] == 503 for r in load.since(killed))), "no 503 while B is down"
            stack.enter_context(product_backend(small_db, backend.port))      # back, on the same port
            restarted = time.monotonic()
            assert wait_until(lambda: any(r[2] == 200 for r in load.since(restarted))), "no answer after restart"
            recovered = min(r[0] + r[4] for r in load.since(restarted) if r[2] == 200)   # first answer back
            assert wait_until(lambda: len(load.since(recovered)) >= 20)

        records = load.since(0)
        assert max(r[4] for r in records) < FAST, "a request hung"
        assert {r[2] for r in records} <= {200, 503}, "only answers and clean 503s"
        down = [json.loads(r[3])["error"] for r in records if r[2] == 503]
        assert all("backend B (product search)" in error for error in down), down[0]
        after = [r for r in records if r[0] >= recovered]
        wrong = [r for r in after if (r[2], r[3]) != expected[r[1]]]
        assert not wrong, f"wrong answers after the restart: {wrong[:3]}"
