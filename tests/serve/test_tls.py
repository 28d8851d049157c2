"""HTTPS from serve_wsgi: net's TLS (ssl=), the handshake bounded by header_timeout, no sendfile over TLS."""
import socket
import ssl
import time

import httpx
import pytest

from tests.serve.serveutil import DEADLINE, HOST, blob_and_sendfile_calls, served

trustme = pytest.importorskip("trustme")


@pytest.fixture(scope="module")
def contexts():
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def _get(port, client_ctx, path="/"):
    with socket.create_connection((HOST, port), timeout=DEADLINE) as raw, \
            client_ctx.wrap_socket(raw, server_hostname=HOST) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_a_file_wrapper_over_tls_is_read_in_blocks_not_sent_with_sendfile(contexts, tmp_path, monkeypatch):
    path, data, calls = blob_and_sendfile_calls(tmp_path, monkeypatch, 2 * 1024 * 1024 + 3)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("X-Scheme", environ["wsgi.url_scheme"])])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    with served(app, validate=False, ssl=contexts[0]) as srv:
        r = httpx.get(f"https://{HOST}:{srv.port}/", verify=contexts[1], timeout=DEADLINE)
    assert (r.status_code, r.headers["x-scheme"]) == (200, "https")
    assert r.content == data and not calls


def test_a_client_that_never_finishes_its_handshake_is_cut_within_header_timeout(contexts):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with served(app, ssl=contexts[0], header_timeout=0.3, keep_alive=3 * DEADLINE) as srv, \
            socket.create_connection((HOST, srv.port), timeout=DEADLINE) as s:
        start = time.monotonic()
        assert s.recv(100) == b""                    # we sent no ClientHello: the server gives up
        assert time.monotonic() - start < DEADLINE
        assert b"200 OK" in _get(srv.port, contexts[1])    # and it still serves others


def test_an_upload_over_tls_streams_to_an_app_that_answers_as_it_reads(contexts):
    """Full duplex over one TLS socket: the read loop takes the body while the answer sends a line per block read."""
    def app(environ, start_response):
        stream = environ["wsgi.input"]
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        while block := stream.read(65536):
            write(b"%d\n" % len(block))
        return []

    size = 3 * 1024 * 1024
    with served(app, validate=False, ssl=contexts[0]) as srv, \
            httpx.Client(verify=contexts[1], timeout=DEADLINE) as client:
        for _ in range(2):                              # the connection goes on after it
            r = client.post(f"https://{HOST}:{srv.port}/", content=b"u" * size,
                            headers={"Expect": "100-continue"})
            assert r.status_code == 200 and sum(map(int, r.text.split())) == size
