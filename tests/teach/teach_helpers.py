"""Shared by the teaching-tool tests: where the lessons are, and a CLI runner."""
import subprocess
import sys
from pathlib import Path

from genloop.demos.teach_cli import lessons

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
#: Lessons whose transcript is the same on every machine (no sockets, no real time).
DETERMINISTIC = ["01_ping_pong", "02_sleep_sort", "03_producer_consumer"]


def lesson(stem: str) -> Path:
    return next(p for p in lessons() if p.stem == stem)


def genloop(*args, input="", timeout=20):
    """Run the ``genloop`` command in a fresh process, ``input`` on a pipe."""
    return subprocess.run([sys.executable, "-m", "genloop.demos.cli", *map(str, args)], input=input, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
