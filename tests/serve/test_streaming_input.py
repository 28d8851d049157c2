"""``wsgi.input`` streams: the app runs once the head is in and reads the body as it arrives."""
import threading

from tests.serve.serveutil import DEADLINE, connect, recv_until_eof, served

HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"


def test_the_app_reads_the_first_half_while_the_client_holds_the_second():
    first_read = threading.Event()

    def app(environ, start_response):
        body = environ["wsgi.input"]
        half = body.read(5)
        first_read.set()                        # the client sends the rest only now
        rest = body.read(5)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [half + b"|" + rest]

    with served(app) as srv, connect(srv.port) as s:
        s.sendall(HEAD + b"Content-Length: 10\r\n\r\nhello")
        assert first_read.wait(DEADLINE), "the app did not get the first half before the whole body"
        s.sendall(b"world")
        answer = recv_until_eof(s)
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"\r\nhello|world\r\n" in answer
