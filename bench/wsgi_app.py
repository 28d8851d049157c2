"""The WSGI benchmark's app: Flask's hello, and an endpoint that blocks 10 ms (a database call, say)."""
import time

from flask import Flask

app = Flask(__name__)
#: Seconds /block holds its thread.
BLOCK = 0.010


@app.route("/")
def hello():
    return "Hello, World!"


@app.route("/block")
def block():
    time.sleep(BLOCK)
    return "blocked 10 ms"
