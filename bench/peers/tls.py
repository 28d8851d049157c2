"""The HTTPS peers' certificate: a throw-away CA and a server certificate for
127.0.0.1 and localhost, made with trustme when the peer starts (wrk does not
verify it; the handshake and the record layer are the work measured)."""

from __future__ import annotations

import ssl

import trustme


def server_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx
