"""The peers' command line and the READY handshake with the harness."""

from __future__ import annotations

import argparse

from bench.peers.work import SESSIONS


def parse_args(description: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--mode", choices=sorted(SESSIONS), default="http")
    args = parser.parse_args()
    args.session = SESSIONS[args.mode]
    return args


def announce(port: int) -> None:
    """Tell the harness we listen: it waits for this line before sending load."""
    print(f"READY {port}", flush=True)
