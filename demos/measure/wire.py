"""The requests a load generator sends, and how it knows an answer is whole."""
import re

#: The line every echo exchange sends: 64 bytes, newline-terminated so line-echo servers answer too.
ECHO_MESSAGE = b"x" * 63 + b"\n"

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


def request(path: str = "/", host: str = "127.0.0.1") -> bytes:
    """A keep-alive GET of ``path``."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def content_length(head: bytes) -> int:
    """The body size a response head announces (0 when it announces none)."""
    found = _CONTENT_LENGTH.search(head)
    return int(found[1]) if found else 0


def answer_complete(buffer: bytes | bytearray) -> bool:
    """``buffer`` holds a whole response: its head and as much body as the head announces."""
    end = buffer.find(b"\r\n\r\n") + 4
    return end >= 4 and len(buffer) >= end + content_length(bytes(buffer[:end]))
