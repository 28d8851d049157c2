"""The work every peer does per request, so the benchmark compares I/O, not parsers.

HTTP: each connection gets a real httptools parser that collects the URL and
headers of every request, as any server must, and earns the 13-byte hello per
complete request, keeping the connection alive unless the client asks to
close. Echo: the bytes come back as they are. Peers that choose their read
size read what genloop's streams read (`genloop.net.stream.READ_SIZE`).
"""

from __future__ import annotations

import httptools

from genloop.demos.bare import HELLO  # the bytes the demos' servers answer, every style the same

BACKLOG = 4096  # listen backlog: 1000 wrk connections, or c10k, arrive at once

# Garbage, or an Upgrade/CONNECT the peers do not speak: the peer closes the connection.
ProtocolError = (httptools.HttpParserError, httptools.HttpParserUpgrade)


class HttpSession:
    """One connection's HTTP state (also the parser's callback object)."""

    __slots__ = ("parser", "url", "headers", "replies", "keep_alive")

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.replies = 0
        self.keep_alive = True

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_message_complete(self) -> None:
        self.replies += 1
        self.keep_alive = self.parser.should_keep_alive()
        self.url, self.headers = b"", []

    def feed(self, data: bytes) -> bytes:
        """Parse `data`; return the replies it completed (maybe none). Raises ProtocolError."""
        self.parser.feed_data(data)
        count, self.replies = self.replies, 0
        return HELLO * count


class EchoSession:
    keep_alive = True

    def feed(self, data: bytes) -> bytes:
        return data


SESSIONS = {"http": HttpSession, "echo": EchoSession}
