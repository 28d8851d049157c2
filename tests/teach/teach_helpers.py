"""Shared by the teaching-tool tests: where the lessons are, and a CLI runner."""
import subprocess
import sys
from pathlib import Path

from genloop.demos.teach_cli import lessons

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
#: Lessons whose transcript is the same on every machine (no sockets; blocking time is simulated).
DETERMINISTIC = ["01_ping_pong", "02_sleep_sort", "03_producer_consumer", "05_with_context", "06_blocking_call",
                 "08_unconfined", "09_limited"]


def lesson(stem: str) -> Path:
    return next(p for p in lessons() if p.stem == stem)


def genloop(*args, input="", timeout=20):
    """Run the ``genloop`` command in a fresh process, ``input`` on a pipe."""
    return subprocess.run([sys.executable, "-m", "genloop.demos.cli", *map(str, args)], input=input, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def png_pixels(data: bytes, max_rows=None):
    """(width, height, the top ``max_rows`` rows of (r, g, b) tuples) of an 8-bit RGB or RGBA PNG.

    Enough to look at a screenshot; a row needs only the one above it, so the rest is left undecoded.
    """
    import struct
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color = header[:4]
    assert depth == 8 and color in (2, 6), f"unsupported PNG: depth {depth}, colour type {color}"
    bpp = 3 if color == 2 else 4
    raw, stride, prev, rows = zlib.decompress(idat), width * bpp, bytearray(width * bpp), []
    for y in range(min(height, max_rows or height)):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[i:i + 3]) for i in range(0, stride, bpp)])
        prev = line
    return width, height, rows
