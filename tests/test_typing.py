"""A type checker sees what ``yield from`` returns: the public API's coroutines are typed with ``genloop.Gen``.

One mypy run over a small user script; each ``reveal_type`` line says what it
must reveal (``# -> TYPE``), each line that must be refused says so
(``# error: MESSAGE``). mypy reads genloop from a tree of links laid out like
the installed package (``genloop/kernel`` ...), so the check is the same for
an editable install and a wheel; its cache stays in the temporary folder
between runs.
"""
import hashlib
import importlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="mypy is in the test extra: pip install -e '.[test]'")

#: Seconds one mypy run may take with a cold cache on a slow, shared machine.
MYPY_TIMEOUT = 50.0

SCRIPT = '''\
from genloop import Dispatchers, Event, Future, Gen, Queue, TaskGroup, gather, sleep, spawn, with_context
from genloop.demos.measure.children import running
from genloop.demos.measure.loadgen import generate
from genloop.demos.measure.machine import machine
from genloop.net import open_connection, serve_http, serve_unix
from genloop.rpc import Backoff, BlockingClient, ReconnectingClient, Server, connect


def answer() -> Gen[int]:
    yield
    return 42


def double(x: int) -> int:
    return 2 * x


def main() -> Gen[None]:
    reveal_type((yield from answer()))  # -> int
    reveal_type((yield from sleep(0.1)))  # -> None
    task = yield from spawn(answer)
    reveal_type(task)  # -> genloop.kernel.task.Task[int]
    reveal_type((yield from task.join()))  # -> int
    reveal_type((yield from with_context(Dispatchers.IO, double, 2)))  # -> int
    reveal_type((yield from with_context(Dispatchers.Default, answer)))  # -> int
    q: Queue[str] = Queue()
    reveal_type((yield from q.get()))  # -> str
    f: Future[bytes] = Future()
    reveal_type((yield from f.wait()))  # -> bytes
    reveal_type((yield from Event().wait()))  # -> None
    group = TaskGroup()
    reveal_type((yield from group.spawn(answer)))  # -> genloop.kernel.task.Task[int]
    reveal_type((yield from gather(answer(), answer())))  # -> list[Any]
    stream = yield from open_connection("127.0.0.1", 1)
    reveal_type(stream)  # -> genloop.net.stream.Stream
    reveal_type((yield from stream.readline()))  # -> bytes
    reveal_type((yield from serve_http(None, "127.0.0.1", 0)))  # -> genloop.net.tcp.Server
    reveal_type((yield from serve_unix(None, "/nowhere")))  # -> genloop.net.tcp.Server
    wrong: str = yield from answer()  # error: Incompatible types in assignment
    client = yield from connect("127.0.0.1", 1)
    reveal_type(client)  # -> genloop.rpc.client.Client
    keeper = yield from ReconnectingClient("127.0.0.1", 1).start()
    reveal_type(keeper)  # -> genloop.rpc.reconnect.ReconnectingClient
    reveal_type((yield from keeper.call("add", 1, 2)))  # -> Any
    server = Server()
    reveal_type((yield from server.start()))  # -> genloop.net.tcp.Server
    reveal_type((yield from server.shutdown()))  # -> None
    reveal_type((yield from generate("127.0.0.1", 1, ["/"], 1, 0.1)))  # -> dict[Any, Any]



async def amain() -> None:
    reveal_type(await sleep(0.1))  # -> None
    task = await spawn(answer)
    reveal_type(await task.join())  # -> int
    reveal_type(await Queue[int]().get())  # -> int
    reveal_type(await TaskGroup().join())  # -> None

reveal_type(Backoff().next())  # -> float
reveal_type(BlockingClient("127.0.0.1", 1).call("add", 1, 2))  # -> Any
reveal_type(machine())  # -> dict[Any, Any]
with running([("peer", ["true"])]) as servers:
    reveal_type(servers[0].port)  # -> int
'''


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() and link.resolve() == target.resolve():
        return
    link.unlink(missing_ok=True)
    link.symlink_to(target)


def installed_layout(root: Path) -> Path:
    """``root/genloop/...``: links to where each part of the package is imported from."""
    import genloop
    package = root / "genloop"
    package.mkdir(parents=True, exist_ok=True)
    for name in ("__init__.py", "py.typed"):
        _link(package / name, Path(genloop.__file__).parent / name)
    for sub in ("kernel", "net", "rpc", "demos"):
        _link(package / sub, Path(importlib.import_module(f"genloop.{sub}").__file__).parent)
    return root


def expectations() -> tuple[dict[int, str], dict[int, str]]:
    revealed, refused = {}, {}
    for number, line in enumerate(SCRIPT.splitlines(), 1):
        if found := re.search(r"# -> (.+)$", line):
            revealed[number] = found[1]
        elif found := re.search(r"# error: (.+)$", line):
            refused[number] = found[1]
    return revealed, refused


def test_mypy_sees_what_yield_from_returns():
    source = Path(importlib.import_module("genloop").__file__).resolve().parent.parent
    work = Path(tempfile.gettempdir()) / f"genloop-mypy-{hashlib.sha1(str(source).encode()).hexdigest()[:10]}"
    script = work / "user_script.py"
    installed_layout(work / "src")
    script.write_text(SCRIPT)
    env = {**os.environ, "MYPYPATH": str(work / "src")}
    result = subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent", "--cache-dir", str(work / "cache"),
                             "--no-error-summary", "--hide-error-context", "--no-pretty", str(script)],
                            capture_output=True, text=True, env=env, timeout=MYPY_TIMEOUT, cwd=work)
    messages: dict[int, list[tuple[str, str]]] = {}
    for found in re.finditer(r"^.*user_script\.py:(\d+): (note|error): (.*)$", result.stdout, re.M):
        # older mypy spells the builtin types "builtins.int" ...
        messages.setdefault(int(found[1]), []).append((found[2], found[3].replace("builtins.", "")))
    revealed, refused = expectations()
    for number, expected in revealed.items():
        assert ("note", f'Revealed type is "{expected}"') in messages.pop(number, []), \
            f"line {number}: {SCRIPT.splitlines()[number - 1]!r}\n{result.stdout}{result.stderr}"
    for number, expected in refused.items():
        assert any(kind == "error" and text.startswith(expected) for kind, text in messages.pop(number, [])), \
            f"line {number} was not refused\n{result.stdout}{result.stderr}"
    assert not messages, f"unexpected messages:\n{result.stdout}{result.stderr}"
