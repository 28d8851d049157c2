"""A Flask app for the serve tests and the benchmark: hello, a 10 ms blocking call, uploads, a streamed count, streams, errors."""
import hashlib
import os
import sys
import time

from flask import Flask, Response, request, send_file, stream_with_context

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello, World!"


@app.route("/block")
def block():
    time.sleep(0.01)
    return "slept 10 ms"


@app.route("/slow")
def slow():
    print("slow: started", file=sys.stderr, flush=True)     # the SIGTERM test waits for this line
    time.sleep(float(request.args.get("s", "1")))
    return "slow done"


@app.route("/upload", methods=["POST"])
def upload():
    f = request.files["file"]
    data = f.read()
    return {"name": f.filename, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "field": request.form.get("field")}


@app.route("/count", methods=["POST"])
def count():
    print("count: started", file=sys.stderr, flush=True)    # the upload-in-flight test waits for this line
    n = 0
    while block := request.stream.read(65536):
        n += len(block)
    return str(n)


@app.route("/stream")
def stream():
    n = int(request.args.get("n", "5"))

    @stream_with_context
    def lines():
        for i in range(n):
            yield f"{request.path} line {i}\n"      # needs the request context on every step
    return Response(lines(), mimetype="text/plain")


@app.route("/file")
def file():
    return send_file(os.path.abspath(__file__), mimetype="text/plain")


@app.route("/pid")
def pid():
    return str(os.getpid())


@app.route("/boom")
def boom():
    raise RuntimeError("boom")
