"""The memory a streamed upload costs `genloop serve`: one large POST to an app that reads it slowly.

    python -m bench.upload_rss                   # 100 MB, the app pausing 1 ms per 64 KiB block
    python -m bench.upload_rss --pause 0 --mb 500

Runs ``genloop serve bench.upload_rss:app`` in a process of its own, sends the
body from here as fast as the socket takes it, samples the server's RSS
(``/proc/PID/status``) every 20 ms, and prints its growth: with ``wsgi.input``
streaming under back-pressure it stays near ``BODY_BUFFER``, whatever the size.
"""
import argparse
import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
import time

BLOCK = 1 << 20


def app(environ, start_response):
    """Reads the body 64 KiB at a time, pausing ``UPLOAD_PAUSE`` seconds per block; answers its size and sha256."""
    pause = float(os.environ.get("UPLOAD_PAUSE", "0"))
    stream, digest, n = environ["wsgi.input"], hashlib.sha256(), 0
    while block := stream.read(65536):
        n += len(block)
        digest.update(block)
        time.sleep(pause)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d %s" % (n, digest.hexdigest().encode())]


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="body size in MiB")
    parser.add_argument("--pause", type=float, default=0.001, help="seconds the app pauses per 64 KiB block")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    server = subprocess.Popen([sys.executable, "-m", "genloop", "serve", "bench.upload_rss:app", "-b", "127.0.0.1:0"],
                              cwd=root, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "UPLOAD_PAUSE": str(args.pause), "MALLOC_ARENA_MAX": "2"})
    try:
        port = next(int(m.group(1)) for line in server.stderr
                    if (m := re.search(r"Listening at: http://[^:]+:(\d+)", line)))
        samples, done = [], threading.Event()

        def sample():
            while not done.wait(0.02):
                samples.append(rss(server.pid))

        size, chunk = args.mb * BLOCK, os.urandom(BLOCK)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")     # a first request: the app's thread exists
            s.recv(65536)
            before = rss(server.pid)
            sampler = threading.Thread(target=sample)
            sampler.start()
            start = time.monotonic()
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % size)
            for _ in range(args.mb):
                s.sendall(chunk)
            answer = b""
            while data := s.recv(65536):
                answer += data
            elapsed = time.monotonic() - start
            done.set()
            sampler.join()
        assert answer.split(b"\r\n\r\n", 1)[1].startswith(b"%d " % size), answer[:200]
        peak = max(samples, default=before)
        print(f"{args.mb} MiB in {elapsed:.2f} s ({args.mb / elapsed:.0f} MiB/s), app pausing {args.pause} s per 64 KiB: "
              f"server RSS {before / BLOCK:.1f} MiB before, peak {peak / BLOCK:.1f} MiB, "
              f"growth {(peak - before) / BLOCK:.1f} MiB ({len(samples)} samples)")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
