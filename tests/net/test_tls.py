"""TLS (ssl=) on serve_tcp, serve_http and open_connection, with certificates made by trustme.

Peers: Python's ssl client, curl --cacert and openssl s_server (Debian packages
curl and openssl; those tests skip without them).
"""
import hashlib
import logging
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest
import trustme

from genloop import kernel
from genloop.kernel import Dispatchers, Timeout, gather, sleep, spawn, with_context
from genloop.net import Response, open_connection, serve_http, serve_tcp
from tests.net.netutil import DEADLINE, HOST, recv_until_eof, server_thread, until

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def server_ctx(ca):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", HOST).configure_cert(ctx)
    return ctx


@pytest.fixture(scope="module")
def client_ctx(ca):
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def hello(request):
    return Response(200, b"hello over tls " + request.path.encode(), (("Content-Type", "text/plain"),))
    yield


def echo(stream):
    while data := (yield from stream.read(65536)):
        yield from stream.write_all(data)


def https_get(port, ctx, path="/", *, keep=1):
    """``keep`` requests on one connection with Python's ssl client; the bodies."""
    with socket.create_connection((HOST, port), timeout=DEADLINE) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        bodies = []
        for i in range(keep):
            last = i == keep - 1
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{'Connection: close' if last else ''}\r\n\r\n"
                        .encode())
            reply = recv_until_eof(tls) if last else _one_response(tls)
            assert reply.startswith(b"HTTP/1.1 200 "), reply
            bodies.append(reply.partition(b"\r\n\r\n")[2])
        return bodies, tls.version()


def _one_response(tls):
    data = b""
    while b"\r\n\r\n" not in data:
        data += tls.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(v for k, _, v in (line.partition(b": ") for line in head.split(b"\r\n"))
                      if k.lower() == b"content-length"))
    while len(body) < length:
        body += tls.recv(65536)
    return head + b"\r\n\r\n" + body


def test_python_ssl_clients_get_answers_from_serve_http(server_ctx, client_ctx):
    with server_thread(serve_http, hello, HOST, 0, ssl=server_ctx) as server:
        bodies, version = https_get(server.port, client_ctx, "/a", keep=3)
    assert bodies == [b"hello over tls /a"] * 3
    assert version in ("TLSv1.2", "TLSv1.3")


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed (Debian package curl)")
def test_curl_with_cacert_gets_an_answer(server_ctx, ca, tmp_path):
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    with server_thread(serve_http, hello, HOST, 0, ssl=server_ctx) as server:
        url = f"https://localhost:{server.port}/curl"
        done = subprocess.run(["curl", "-sS", "--cacert", str(cafile), "--resolve", f"localhost:{server.port}:{HOST}",
                               url, url], capture_output=True, timeout=DEADLINE)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"hello over tls /curl" * 2


def test_a_plain_tcp_client_on_a_tls_port_hurts_nobody(server_ctx, client_ctx, caplog):
    caplog.set_level(logging.INFO, logger="genloop.net")
    with server_thread(serve_http, hello, HOST, 0, ssl=server_ctx) as server:
        with socket.create_connection((HOST, server.port), timeout=DEADLINE) as plain:
            plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert recv_until_eof(plain) == b""                     # dropped, no answer in clear
            silent = socket.create_connection((HOST, server.port), timeout=DEADLINE)   # says nothing
            bodies, _ = https_get(server.port, client_ctx, "/ok")
            silent.close()
    assert bodies == [b"hello over tls /ok"]
    assert any("TLS handshake" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("dispatcher", [None, Dispatchers.Default], ids=["main", "default"])
def test_genloop_client_and_server_move_a_megabyte_each_way(server_ctx, client_ctx, dispatcher):
    """On Default, a connection's reader and writer run on two threads at once over one TLS engine."""
    blob = os.urandom(1 << 20)

    def body():
        server = yield from serve_tcp(echo, HOST, 0, ssl=server_ctx)
        stream = yield from open_connection("localhost", server.port, ssl=client_ctx)

        def writer():
            yield from stream.write_all(blob)

        def reader():
            got = bytearray()
            while len(got) < len(blob):
                got += yield from stream.read(65536)
            return bytes(got)

        _, echoed = yield from gather(writer(), reader())
        version = stream.socket.sock.ssl_object.version()
        stream.close()
        yield from server.shutdown()
        return hashlib.sha256(echoed).digest(), version

    def main():       # the main task itself stays on Main; the work runs on the dispatcher
        return (yield from with_context(dispatcher or Dispatchers.Main, body))

    digest, version = kernel.run(main)
    assert digest == hashlib.sha256(blob).digest() and version


def test_a_certificate_for_another_name_fails_the_handshake_clearly(server_ctx, ca):
    ctx = ssl.create_default_context()
    trustme.CA().configure_trust(ctx)                 # trusts some other CA only

    def main():
        server = yield from serve_tcp(echo, HOST, 0, ssl=server_ctx)
        try:
            yield from open_connection(HOST, server.port, ssl=ctx, server_hostname="localhost")
        finally:
            yield from server.shutdown()

    with pytest.raises(ssl.SSLCertVerificationError):
        kernel.run(main)


def test_a_server_that_never_answers_the_handshake_times_out(client_ctx):
    with socket.socket() as mute:
        mute.bind((HOST, 0))
        mute.listen()

        def main():
            yield from open_connection(HOST, mute.getsockname()[1], ssl=client_ctx, server_hostname="localhost",
                                       ssl_handshake_timeout=0.2)

        started = time.monotonic()
        with pytest.raises(Timeout):
            kernel.run(main)
        assert time.monotonic() - started < DEADLINE


def test_main_keeps_ticking_while_many_handshakes_run(server_ctx, client_ctx):
    """Handshakes wait on the poller: a ticker on Main is not stalled by 20 of them at once."""
    def main():
        server = yield from serve_http(hello, HOST, 0, ssl=server_ctx)
        gaps = []

        def ticker(stop):
            last = time.monotonic()
            while not stop:
                yield from sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        def client():
            stream = yield from open_connection("localhost", server.port, ssl=client_ctx)
            yield from stream.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            reply = yield from stream.read()
            stream.close()
            return reply

        stop = []
        tick = yield from spawn(ticker, stop)
        yield from until(lambda: tick.state == "waiting", "the ticker's first sleep")
        replies = yield from gather(*[client() for _ in range(20)])
        stop.append(True)
        yield from tick.join()
        yield from server.shutdown()
        return replies, max(gaps)

    replies, worst = kernel.run(main)
    assert all(r.endswith(b"hello over tls /") for r in replies)
    assert worst < 0.5, f"Main stalled {worst:.3f} s"


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is not installed (Debian package openssl)")
def test_genloop_client_talks_to_openssl_s_server(ca, client_ctx, tmp_path):
    pem = tmp_path / "server.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    proc = subprocess.Popen(["openssl", "s_server", "-accept", f"{HOST}:0", "-cert", str(pem), "-rev",
                             "-naccept", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = None
        deadline = time.monotonic() + DEADLINE
        while port is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("ACCEPT"):
                port = int(line.rpartition(":")[2])
        assert port, "openssl s_server did not say where it listens"
        lines = []
        threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()

        def main():
            stream = yield from open_connection("localhost", port, ssl=client_ctx)
            yield from stream.write_all(b"hello genloop\n")
            reply = yield from stream.readline()
            stream.close()
            return reply

        assert kernel.run(main).strip() == b"poolneg olleh"
    finally:
        proc.kill()
        proc.wait()
