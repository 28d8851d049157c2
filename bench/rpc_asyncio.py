"""A reference msgpack-rpc peer on asyncio, the yardstick for genloop's rpc.

    python -m bench.rpc_asyncio [--port 0] [--uvloop]     # serve add/echo, print READY <port>

Written the way a competent asyncio program would be, and doing what
genloop's ``rpc.Peer`` does, no more, no less:

- ``asyncio.Protocol`` + ``msgpack.Unpacker`` (no streams layer), same wire
  format (raw=False, strict_map_key=False, use_bin_type=True);
- one class for both ends: call, notify, serve registered methods;
- pending calls are futures keyed by msgid;
- writes are coalesced: everything produced in one loop iteration (answers to
  a whole read, calls from every task that ran) leaves in one
  ``transport.write``, as genloop's writer task sends all that queued since
  its last send. One write per call would cost asyncio a syscall per call;
- plain methods run inline, coroutine functions as tasks;
- a server stops reading while its transport is over the high-water mark.
"""

from __future__ import annotations

import argparse
import asyncio

import msgpack

REQUEST, RESPONSE, NOTIFICATION = 0, 1, 2
#: msgids wrap as 32-bit unsigned integers, as the spec says.
MAX_MSGID = 2**32 - 1
READY = "READY"


class RemoteError(Exception):
    """The remote method failed; ``error`` is what the peer sent."""

    def __init__(self, error):
        super().__init__(error)
        self.error = error


class Peer(asyncio.Protocol):
    """One msgpack-rpc connection: ``await peer.call(method, *args)``, and serving ``methods``."""

    def __init__(self, methods: dict | None = None):
        self.methods = methods or {}
        self.transport = None
        self.loop = asyncio.get_running_loop()
        self._unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self._packer = msgpack.Packer(use_bin_type=True)
        self._pending: dict[int, asyncio.Future] = {}
        self._msgid = 0
        self._out = bytearray()
        self._flush_scheduled = False
        self._lost: Exception | None = None
        self.closed = self.loop.create_future()

    # -- asyncio.Protocol ----------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self._unpacker.feed(data)
        for msg in self._unpacker:
            kind = msg[0]
            if kind == RESPONSE:
                _, msgid, error, result = msg
                fut = self._pending.pop(msgid, None)
                if fut is not None and not fut.done():
                    if error is None:
                        fut.set_result(result)
                    else:
                        fut.set_exception(RemoteError(error))
            elif kind == REQUEST:
                self._serve(msg[1], msg[2], msg[3])
            elif kind == NOTIFICATION:
                self._serve(None, msg[1], msg[2])

    def connection_lost(self, exc):
        self._lost = ConnectionError(f"connection lost: {exc or 'closed'}")
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(self._lost)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self):
        if self.methods:              # only a serving peer sheds load; a caller must keep reading answers
            self.transport.pause_reading()

    def resume_writing(self):
        if self.methods:
            self.transport.resume_reading()

    # -- calling -------------------------------------------------------------
    def call(self, method: str, *args) -> asyncio.Future:
        """Send the call now; await the returned future for the result."""
        if self._lost is not None:
            raise self._lost
        msgid = self._msgid
        self._msgid = (msgid + 1) & MAX_MSGID
        fut = self.loop.create_future()
        self._pending[msgid] = fut
        self._send(self._packer.pack([REQUEST, msgid, method, args]))
        return fut

    def notify(self, method: str, *args) -> None:
        if self._lost is not None:
            raise self._lost
        self._send(self._packer.pack([NOTIFICATION, method, args]))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- serving -------------------------------------------------------------
    def _serve(self, msgid, name, params):
        fn = self.methods.get(name)
        if fn is None:
            if msgid is not None:
                self._respond(msgid, ["NoMethodError", f"unknown method {name!r}"], None)
            return
        try:
            result = fn(*params)
        except Exception as e:  # noqa: BLE001 - becomes the error response
            self._respond(msgid, [type(e).__name__, str(e)], None)
            return
        if asyncio.iscoroutine(result):
            self.loop.create_task(self._serve_async(msgid, result))
        else:
            self._respond(msgid, None, result)

    async def _serve_async(self, msgid, coro):
        try:
            result = await coro
        except Exception as e:  # noqa: BLE001 - becomes the error response
            self._respond(msgid, [type(e).__name__, str(e)], None)
        else:
            self._respond(msgid, None, result)

    def _respond(self, msgid, error, result):
        if msgid is not None and self._lost is None:
            self._send(self._packer.pack([RESPONSE, msgid, error, result]))

    # -- writing -------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        self._out += data
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self):
        self._flush_scheduled = False
        if self._out and self._lost is None:
            data, self._out = self._out, bytearray()
            self.transport.write(data)


async def connect(host: str, port: int) -> Peer:
    """A client ``Peer`` connected to ``host:port`` (TCP_NODELAY, as asyncio sets by default)."""
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_connection(Peer, host, port)
    return peer


async def serve(methods: dict, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: Peer(methods), host, port)


def add(a, b):
    return a + b


def echo(value):
    return value


BENCH_METHODS = {"add": add, "echo": echo}


async def serve_until_killed(host: str, port: int) -> None:
    server = await serve(BENCH_METHODS, host, port)
    print(READY, server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def loop_factory(use_uvloop: bool):
    if not use_uvloop:
        return None
    import uvloop
    return uvloop.new_event_loop


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve add/echo over msgpack-rpc on asyncio.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=loop_factory(args.uvloop)) as runner:
        runner.run(serve_until_killed(args.host, args.port))


if __name__ == "__main__":
    main()
