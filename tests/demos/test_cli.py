"""The genloop command: demos and benches run, and bad options get a message and a non-zero exit."""
import json
import re
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest
from typer.testing import CliRunner

from genloop.demos import benchmarks
from genloop.demos.cli import DEMOS, app
from tests.demos.demo_helpers import DEADLINE, SMALL_PRODUCTS, SMALL_USERS, reaped

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def plain(output: str) -> str:
    """The output without rich's boxes and line wrapping."""
    return re.sub(r"[\s│╭╮╰╯─]+", " ", output)


def test_demo_list_names_every_demo_and_its_idea():
    result = invoke("demo", "list")
    assert result.exit_code == 0
    for name, (_, idea) in DEMOS.items():
        assert re.search(rf"^{re.escape(name)}\s+{re.escape(idea)}$", result.output, re.M)


def test_the_hello_demo_runs_and_finishes():
    result = invoke("demo", "run", "hello")
    assert result.exit_code == 0, result.output
    assert "Default: 7² = 49" in result.output


@pytest.mark.parametrize("args, message", [
    (["demo", "run", "nope"], "No such command 'nope'"),
    (["demo", "run", "fork", "--port", "70000"], "--port"),
    (["demo", "run", "coroutines", "--mode", "gopher"], "--mode"),
    (["demo", "run", "search", "--user-backend", "nowhere"], "is not HOST:PORT"),
    (["demo", "run", "search", "--style", "threads"], "--style"),
    (["demo", "run", "c10k", "--style", "fork", "-n", "5000"], "at most 1,000"),
    (["bench", "servers", "--style", "nope"], "no style 'nope'"),
    (["bench", "search", "--style", "fork"], "no style 'fork'"),
    (["bench", "servers", "-c", "0"], "--concurrency"),
    (["bench", "servers", "--duration", "0"], "--duration"),
    (["bench", "servers", "--json", "/no/such/folder/out.json"], "no folder"),
    (["bench", "c10k", "--style", "fork"], "at most 1,000"),
])
def test_bad_options_get_a_message_not_a_traceback(args, message):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in plain(result.output)
    assert "Traceback" not in result.output


def test_a_port_in_use_is_a_message_not_a_traceback():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = invoke("demo", "run", "coroutines", "--port", str(taken.getsockname()[1]))
    assert result.exit_code == 1 and "Address already in use" in result.output
    assert "Traceback" not in result.output


def test_a_chart_without_matplotlib_is_refused_up_front(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)       # import matplotlib now fails
    result = invoke("bench", "servers", "--chart", str(tmp_path / "chart.png"))
    assert result.exit_code == 2 and "pip install 'genloop[plot]'" in plain(result.output)


def test_wrk_asked_for_but_missing_is_refused(monkeypatch):
    monkeypatch.setattr(benchmarks.shutil, "which", lambda name: None)
    result = invoke("bench", "servers", "--client", "wrk")
    assert result.exit_code == 2 and "wrk is not installed" in plain(result.output)


def test_bench_servers_measures_with_the_genloop_load_generator(tmp_path):
    out = tmp_path / "servers.json"
    result = invoke("bench", "servers", "--style", "coroutines", "-c", "20", "--duration", "1",
                    "--client", "genloop", "--json", str(out))
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    [row] = figures["rows"]
    assert (row["style"], row["concurrency"], row["errors"]) == ("coroutines", 20, 0)
    assert row["rps"] > 0 and row["p99"] >= row["p50"] > 0 and row["memory"] > 0 and row["threads"] >= 2
    assert figures["client"] == "genloop" and figures["machine"]["cores"] >= 1


def test_bench_search_runs_the_fronts_against_their_backends(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))         # the generated data goes here
    out = tmp_path / "search.json"
    result = invoke("bench", "search", "--style", "callbacks", "-c", "10",
                    "--duration", "1", "--client", "genloop", "--latency", "0", "--users", str(SMALL_USERS),
                    "--products", str(SMALL_PRODUCTS), "--json", str(out))
    assert result.exit_code == 0, result.output
    [row] = json.loads(out.read_text())["rows"]
    assert (row["style"], row["errors"]) == ("callbacks", 0) and row["rps"] > 0


@pytest.mark.parametrize("name", ["coroutines", "reactor"])
def test_demo_run_serves_until_ctrl_c(name):
    with reaped(subprocess.Popen([sys.executable, "-m", "genloop.demos.cli", "demo", "run", name, "--port", "0"],
                                 stdout=subprocess.PIPE, text=True)) as process:
        first = process.stdout.readline()
        url = re.search(r"http://[\d.]+:\d+", first)[0]
        banner = [first]
        while banner[-1] and not banner[-1].startswith("Ctrl-C to stop"):   # the whole banner, before any Ctrl-C
            banner.append(process.stdout.readline())
        with urllib.request.urlopen(url + "/", timeout=DEADLINE) as response:
            assert response.read() == b"Hello, world!"
        process.send_signal(signal.SIGINT)
        rest = process.stdout.read()
        assert process.wait(DEADLINE) == 0
    # The stage lines (demos.stage) come from the server's threads, in between the others.
    lines = [line for line in rest.splitlines() if not line.startswith(f"{name}: ")]
    assert any("curl" in line for line in banner) and lines[-1] == "stopped", (banner, rest)
