"""The measuring pieces are part of the package: `genloop bench` and the c10k demo run without the checkout."""
import ast
import importlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from genloop.demos import coroutines
from genloop.demos.measure import children, clients, loadgen, wire
from genloop.demos.serving import Serving
from genloop.kernel import run
from tests.demos.demo_helpers import DEADLINE, reaped

#: The modules whose folders the installed package is made of.
PACKAGES = ("genloop", "genloop.kernel", "genloop.net", "genloop.rpc", "genloop.demos")
#: Where the package puts a folder on sys.path for the user's code, not its own: `genloop serve`
#: imports the user's app from the current directory first, as gunicorn does.
USER_PATH = {"serve.py"}


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def test_the_package_imports_nothing_from_the_checkout_and_touches_no_sys_path():
    for package in PACKAGES:
        for path in Path(importlib.import_module(package).__file__).parent.rglob("*.py"):
            roots = {name.partition(".")[0] for name in _imports(path)}
            assert not roots & {"bench", "tests", "kernel", "net", "rpc", "demos"}, path
            assert path.name in USER_PATH or "sys.path" not in path.read_text(), path


def outside(*args, **kwargs) -> subprocess.Popen:
    """``python -m genloop ARGS`` from a folder with no checkout in it, nor on the path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.Popen([sys.executable, "-m", "genloop", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_bench_servers_runs_from_outside_the_checkout(tmp_path):
    out = tmp_path / "servers.json"
    process = outside("bench", "servers", "--style", "coroutines", "-c", "5", "--duration", "1",
                      "--client", "genloop", "--json", str(out), cwd=tmp_path)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    [row] = json.loads(out.read_text())["rows"]
    assert (row["style"], row["errors"]) == ("coroutines", 0) and row["rps"] > 0


def test_the_c10k_demo_runs_from_outside_the_checkout(tmp_path):
    with reaped(outside("demo", "run", "c10k", "--style", "coroutines", "-n", "20", cwd=tmp_path)) as process:
        lines = [process.stdout.readline() for _ in range(3)]
        assert "20 of 20 connections answered" in lines[1], lines
        process.send_signal(signal.SIGINT)
        assert process.wait(DEADLINE) == 0


def test_an_answer_is_whole_once_its_announced_body_is_in():
    head = b"HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 5\r\n\r\n"
    assert wire.content_length(head) == 5
    assert not wire.answer_complete(head[:-2])
    assert not wire.answer_complete(head + b"hell")
    assert wire.answer_complete(head + b"hello")
    assert wire.answer_complete(b"HTTP/1.1 204 No Content\r\n\r\n")


@pytest.mark.parametrize("mode", ["http", "echo"])
def test_the_load_generator_measures_either_mode(mode):
    with Serving(coroutines.serve, mode=mode) as server:
        result = run(loadgen.generate, "127.0.0.1", server.port, ["/"], 4, 0.2, mode)
    assert result["errors"] == 0 and result["requests"] > 0
    assert 0 < result["p50"] <= result["p99"]
    sample = clients.parse_loadgen(json.dumps(result))
    assert sample.requests == result["requests"]


def child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_a_server_deaf_to_sigterm_is_killed():
    process = child("import signal, time\n"
                    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                    "print('starting'); print('READY 4242', flush=True); time.sleep(60)")
    assert children.wait_ready(process, "deaf") == 4242
    children.stop([process], timeout=0.2)
    assert process.returncode == -signal.SIGKILL


def test_a_server_that_exits_before_ready_is_an_error():
    process = child("print('no luck')")
    with pytest.raises(RuntimeError, match=re.escape("early exited (status 0) before READY")):
        children.wait_ready(process, "early")
    process.stdout.close()
