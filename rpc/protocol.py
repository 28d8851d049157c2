"""Sans-IO msgpack-rpc: turns bytes into messages and messages into bytes.

Wire format (https://github.com/msgpack-rpc/msgpack-rpc/blob/master/spec.md)::

    request       [0, msgid, method, params]
    response      [1, msgid, error, result]
    notification  [2, method, params]

No sockets, no threads, no clock: the transport feeds whatever bytes it read
into `Connection.receive_data` and writes whatever bytes the ``send_*`` methods
return. That keeps the protocol testable byte by byte and usable from the
coroutine client, the server and plain threads alike.

Strict in what we send, lenient in what we accept: a method name must be a str
to send, but one received as bin (bytes, as some older peers send it) is
decoded as UTF-8. Everything else off-spec raises `ProtocolError`.
"""

from collections.abc import Sequence

import msgpack
from msgpack.exceptions import UnpackException

__all__ = [
    "MAX_BUFFER_SIZE",
    "MAX_MSGID",
    "NOTIFICATION",
    "REQUEST",
    "RESPONSE",
    "Connection",
    "NotificationMessage",
    "ProtocolError",
    "RequestMessage",
    "ResponseMessage",
    "new_packer",
    "next_msgid",
]

REQUEST, RESPONSE, NOTIFICATION = 0, 1, 2

#: msgids are unsigned 32-bit integers; the counter wraps to 0 after this.
MAX_MSGID = 2**32 - 1

#: Largest frame (one encoded message) a Connection accepts, in bytes; it is
#: also the Unpacker's max_buffer_size. Without a bound, a peer (or line noise)
#: announcing a 4 GiB string would make us buffer until memory runs out. msgpack
#: derives its per-object length limits (str, bin, array, map) from it, so an
#: absurd array or map header fails at once. 64 MiB is far above any sane RPC
#: payload, yet bounds what one connection can make us hold.
MAX_BUFFER_SIZE = 64 * 1024 * 1024


def next_msgid(msgid: int) -> int:
    """Return the msgid after `msgid`, wrapping from 2**32 - 1 to 0."""
    return (msgid + 1) & MAX_MSGID


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid msgpack-rpc message.

    `messages` holds the valid messages decoded before the bad frame in the
    same `Connection.receive_data` call, so a caller may still deliver them
    (e.g. a response that arrived just before garbage).
    """

    def __init__(self, message: str, messages=()):
        super().__init__(message)
        self.messages = list(messages)


class _Message:
    # Plain classes rather than NamedTuples: a tuple would compare equal to a
    # different message kind (or a bare tuple) holding the same fields.
    __slots__ = ()

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.__slots__)

    def __repr__(self):
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__slots__)
        return f"{type(self).__name__}({fields})"


class RequestMessage(_Message):
    """``[0, msgid, method, params]``: call `method`; answer with `msgid`."""

    __slots__ = __match_args__ = ("msgid", "method", "params")

    def __init__(self, msgid: int, method: str, params: list):
        self.msgid = msgid
        self.method = method
        self.params = params


class ResponseMessage(_Message):
    """``[1, msgid, error, result]``: `error` is None on success."""

    __slots__ = __match_args__ = ("msgid", "error", "result")

    def __init__(self, msgid: int, error, result):
        self.msgid = msgid
        self.error = error
        self.result = result


class NotificationMessage(_Message):
    """``[2, method, params]``: a call that expects no response."""

    __slots__ = __match_args__ = ("method", "params")

    def __init__(self, method: str, params: list):
        self.method = method
        self.params = params


def _short(obj) -> str:
    r = repr(obj)
    return r if len(r) <= 80 else r[:77] + "..."


def _bad_msgid(msgid) -> ProtocolError:
    return ProtocolError(f"msgid must be an unsigned 32-bit integer, got {_short(msgid)}")


def _bad_params(params) -> ProtocolError:
    return ProtocolError(f"params must be an array, got {_short(params)}")


def _method_name(method) -> str:
    # Called for a non-str name only. Spec peers send str; some old ones send
    # the name as bin: accept that as UTF-8 so both kinds of peer work.
    if type(method) is bytes:
        try:
            return method.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"method name is not valid UTF-8: {_short(method)}") from None
    raise ProtocolError(f"method name must be a string, got {_short(method)}")


def _checked(frame) -> list:
    """Validate one decoded msgpack object off the hot path; return it as a frame.

    The decode loop checks the common shapes (a request with a str name, a
    response) inline; this sees the rest: notifications, names sent as bin
    (the returned frame then holds the str), and everything off-spec, which
    raises. Checks use type() rather than isinstance(): msgpack only
    produces exact types, and a bool (an int subclass) is neither a type
    code nor a msgid.
    """
    if type(frame) is not list:
        raise ProtocolError(f"message must be an array, got {_short(frame)}")
    n = len(frame)
    kind = frame[0] if n else None
    if type(kind) is int:
        if kind == REQUEST and n == 4:
            _, msgid, method, params = frame
            if type(msgid) is not int or not 0 <= msgid <= MAX_MSGID:
                raise _bad_msgid(msgid)
            if type(method) is not str:
                method = _method_name(method)
            if type(params) is not list:
                raise _bad_params(params)
            return [REQUEST, msgid, method, params]
        if kind == RESPONSE and n == 4:
            raise _bad_msgid(frame[1])      # the only check a response can fail inline
        if kind == NOTIFICATION and n == 3:
            _, method, params = frame
            if type(method) is not str:
                method = _method_name(method)
            if type(params) is not list:
                raise _bad_params(params)
            return [NOTIFICATION, method, params]
        if kind in (REQUEST, RESPONSE, NOTIFICATION):
            want = 3 if kind == NOTIFICATION else 4
            name = ("request", "response", "notification")[kind]
            raise ProtocolError(f"{name} must be an array of {want} elements, got {n}: {_short(frame)}")
    raise ProtocolError(f"message type must be 0, 1 or 2, got {_short(kind)} in {_short(frame)}")


#: The message class of each frame kind (``Connection.receive_data``).
_MESSAGES = (RequestMessage, ResponseMessage, NotificationMessage)


def _message(frame):
    """The message object of a valid frame."""
    return _MESSAGES[frame[0]](*frame[1:])


#: Bytes after the type byte of a fixed-size msgpack item: nil, bools, floats, ints, fixext.
_FIXED = {0xc0: 0, 0xc1: 0, 0xc2: 0, 0xc3: 0, 0xca: 4, 0xcb: 8, 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8,
          0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8, 0xd4: 2, 0xd5: 3, 0xd6: 5, 0xd7: 9, 0xd8: 17}
#: str, bin and ext headers: (what, bytes of the length field, bytes between it and the payload).
_SIZED = {0xd9: ("str", 1, 0), 0xda: ("str", 2, 0), 0xdb: ("str", 4, 0),
          0xc4: ("bin", 1, 0), 0xc5: ("bin", 2, 0), 0xc6: ("bin", 4, 0),
          0xc7: ("ext", 1, 1), 0xc8: ("ext", 2, 1), 0xc9: ("ext", 4, 1)}
#: array and map headers: bytes of the count field (msgpack checks counts at once itself).
_COUNTED = {0xdc: 2, 0xdd: 4, 0xde: 2, 0xdf: 4}


class _LengthCheck:
    """Reads the lengths an unfinished frame announces, as its bytes arrive.

    msgpack's Unpacker checks a str, bin or ext length only once the whole
    payload is buffered, so a header announcing 4 GiB would be refused only
    after the frame limit's worth of bytes. This walks the items of the
    frame still being received (never those of a whole frame: the unpacker
    has them) and refuses such a header the moment it arrives. A walk needs
    no nesting: each item is a type byte, a length or count, a payload.
    """

    __slots__ = ("limit", "skip", "partial")

    def __init__(self, limit: int):
        self.limit = limit
        self.reset()

    def reset(self) -> None:
        self.skip = 0          # payload bytes of the last item still to come
        self.partial = b""     # a header cut by the end of the last chunk

    def scan(self, data) -> None:
        pos = min(self.skip, len(data))
        self.skip -= pos
        if self.partial:
            data, pos, self.partial = self.partial + bytes(data[pos:]), 0, b""
        end = len(data)
        while pos < end:
            kind = data[pos]
            if kind <= 0x9f or kind >= 0xe0:             # fixint, fixmap, fixarray: one byte
                pos += 1
                continue
            if kind <= 0xbf:                             # fixstr
                pos, size = pos + 1, kind & 0x1f
            elif kind in _FIXED:
                pos, size = pos + 1, _FIXED[kind]
            else:
                sized = _SIZED.get(kind)
                width = sized[1] if sized else _COUNTED[kind]
                if pos + 1 + width > end:
                    self.partial = bytes(data[pos:])
                    return
                if sized is None:
                    pos += 1 + width
                    continue
                size = int.from_bytes(data[pos + 1:pos + 1 + width], "big")
                if size > self.limit:
                    raise ProtocolError(f"a {sized[0]} of {size} bytes announced: over the {self.limit}-byte frame limit")
                pos += 1 + width + sized[2]
            if pos + size > end:
                self.skip = pos + size - end
                return
            pos += size


def _as_array(params):
    # list and tuple pack as msgpack arrays as they are: no copy on the hot path.
    if isinstance(params, (list, tuple)):
        return params
    if isinstance(params, (str, bytes, bytearray, memoryview)) or not isinstance(params, Sequence):
        raise TypeError(f"params must be a sequence of arguments, got {type(params).__name__}")
    return list(params)


class Connection:
    """Protocol state of one msgpack-rpc connection, either side.

    Not thread-safe: the unpacker, packer and msgid counter are shared state,
    so the caller serialises access (the client holds a lock around it).

    Receiving: `receive_data` returns the messages completed by the bytes
    given, whatever the chunking. On an invalid frame it raises
    `ProtocolError`; the byte stream can no longer be trusted to be in sync,
    so every later `receive_data` raises it again and the transport should be
    closed. Sending raises TypeError/ValueError for bad arguments (a bug on our
    side, not the peer's) and leaves the connection usable.
    """

    __slots__ = ("_unpacker", "_packer", "_next_msgid", "_max_frame", "_fed", "_frame_start", "_error",
                 "_lengths", "_scanned")

    def __init__(self, *, first_msgid: int = 0, max_buffer_size: int = MAX_BUFFER_SIZE):
        if type(first_msgid) is not int or not 0 <= first_msgid <= MAX_MSGID:
            raise ValueError(f"first_msgid must be in 0..{MAX_MSGID}, got {first_msgid!r}")
        # raw=False: str arrives as str (bin stays bytes). strict_map_key=False:
        # other languages use ints and the like as map keys; accept them.
        self._unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=max_buffer_size)
        self._packer = new_packer()
        self._next_msgid = first_msgid
        self._max_frame = max_buffer_size
        self._fed = 0  # bytes fed to the unpacker so far
        self._frame_start = 0  # stream offset where the current frame began
        self._error = None
        self._lengths = _LengthCheck(max_buffer_size)
        self._scanned = 0  # stream offset up to which _lengths has looked

    # -- receiving -----------------------------------------------------------

    def receive_data(self, data) -> list[RequestMessage | ResponseMessage | NotificationMessage]:
        """Feed bytes read from the peer; return every message now complete.

        `data` is any bytes-like object (bytes, bytearray, memoryview of bytes).
        """
        try:
            frames = self.receive_frames(data)
        except ProtocolError as exc:
            exc.messages = [_message(f) for f in exc.messages]
            raise
        return [_message(f) for f in frames]

    def receive_frames(self, data) -> list[list]:
        """``receive_data`` without the message objects: each valid message as the array it came in.

        ``[0, msgid, method, params]``, ``[1, msgid, error, result]`` or
        ``[2, method, params]``, checked as ``receive_data`` checks them (a
        method name sent as bin arrives as str); a ``ProtocolError``'s
        ``messages`` are frames too. For a transport that dispatches on the
        type code itself: no object per message.
        """
        if self._error is not None:
            raise ProtocolError(f"connection already failed: {self._error}")
        frames = []
        try:
            self._decode(data, frames, frames)
        except ProtocolError as exc:
            raise self._failed(exc, frames)
        except (ValueError, TypeError, UnpackException) as exc:
            raise self._failed(exc, frames) from exc
        return frames

    def receive_split(self, data) -> tuple[list[list], list[list]]:
        """``receive_frames`` with the responses apart: ``(responses, requests and notifications)``.

        Each list keeps the order the frames came in. For a transport that
        hands answers to their callers and runs requests in two passes: no
        pass looks at a frame of the other kind. A ``ProtocolError``'s
        ``messages`` are the responses, then the rest.
        """
        if self._error is not None:
            raise ProtocolError(f"connection already failed: {self._error}")
        responses, others = [], []
        try:
            self._decode(data, responses, others)
        except ProtocolError as exc:
            raise self._failed(exc, responses + others)
        except (ValueError, TypeError, UnpackException) as exc:
            raise self._failed(exc, responses + others) from exc
        return responses, others

    def _failed(self, exc, frames) -> ProtocolError:
        """The connection is out of sync for good: the ``ProtocolError`` to raise now and on every later read.

        ``exc`` is a ProtocolError, or what msgpack raised: FormatError,
        StackError, invalid UTF-8, a length over the limits, an unhashable
        map key (e.g. an array), BufferFull. ``frames`` decoded intact
        before it go along as ``messages``.
        """
        if not isinstance(exc, ProtocolError):
            exc = ProtocolError(f"undecodable msgpack data: {str(exc) or type(exc).__name__}")
        exc.messages = frames
        self._error = exc
        return exc

    def _decode(self, data, responses, others) -> None:
        """Decode ``data`` into frames: responses appended to ``responses``, the rest to ``others`` (maybe one list)."""
        unpacker = self._unpacker
        respond = responses.append
        append = others.append
        tell = unpacker.tell
        limit = self._max_frame
        fed, start = self._fed, self._frame_start       # kept in locals, stored once per chunk
        pos, end = 0, len(data)
        while True:
            # Feed at most what keeps the current frame within the limit, so a
            # big read of many small frames never trips the unpacker's
            # BufferFull, while one oversized frame is caught exactly.
            room = limit - (fed - start)
            if pos == 0 and end <= room:
                chunk = data
            else:
                chunk = memoryview(data)[pos : pos + room]
            unpacker.feed(chunk)
            pos += len(chunk)
            fed += len(chunk)
            self._fed = fed
            for frame in unpacker:
                start = tell()     # here, not after the loop: a frame cut short moves tell() on
                # The hot shapes checked inline (a request with a str name, a
                # response), everything else by _checked: no call per message.
                # ``__class__ is``: an exact type, as type() but cheaper.
                if frame.__class__ is list and len(frame) == 4:
                    kind, msgid, third, params = frame
                    if msgid.__class__ is int and 0 <= msgid <= MAX_MSGID and kind.__class__ is int:
                        if kind == RESPONSE:
                            respond(frame)
                            continue
                        if kind == REQUEST and third.__class__ is str and params.__class__ is list:
                            append(frame)
                            continue
                append(_checked(frame))     # never a response: one that fails inline is off-spec
            self._frame_start = start
            if start < fed:
                self._check_lengths(chunk)
            if fed - start >= limit:
                raise ProtocolError(f"message larger than the {limit}-byte limit")
            if pos >= end:
                return

    def _check_lengths(self, chunk) -> None:
        """Walk the bytes of the unfinished frame that ``chunk`` brought (only those)."""
        start = self._frame_start
        if self._scanned < start:              # a new frame: what came before was whole
            self._lengths.reset()
        else:
            start = self._scanned
        self._lengths.scan(chunk[start - (self._fed - len(chunk)):])
        self._scanned = self._fed

    # -- sending -------------------------------------------------------------

    def send_request(self, method: str, params: Sequence = ()) -> tuple[int, bytes]:
        """Encode a request with the next msgid; return ``(msgid, bytes)``.

        The msgid is consumed only if encoding succeeds.
        """
        if not isinstance(method, str):
            raise TypeError(f"method must be a str, got {type(method).__name__}")
        if type(params) is not tuple:       # a call's *args: the hot path takes no call here
            params = _as_array(params)
        msgid = self._next_msgid
        data = self._packer.pack([REQUEST, msgid, method, params])
        self._next_msgid = (msgid + 1) & MAX_MSGID     # next_msgid, inlined
        return msgid, data

    def send_response(self, msgid: int, error, result) -> bytes:
        """Encode the response to request `msgid` (`error` None on success)."""
        if type(msgid) is not int or not 0 <= msgid <= MAX_MSGID:
            raise ValueError(f"msgid must be an unsigned 32-bit integer, got {msgid!r}")
        return self._packer.pack([RESPONSE, msgid, error, result])

    def send_notification(self, method: str, params: Sequence = ()) -> bytes:
        """Encode a notification (no msgid, no response)."""
        if not isinstance(method, str):
            raise TypeError(f"method must be a str, got {type(method).__name__}")
        return self._packer.pack([NOTIFICATION, method, _as_array(params)])


def new_packer() -> msgpack.Packer:
    """A packer as every ``Connection`` encodes with (bin type for bytes), for a transport's own use."""
    return msgpack.Packer(use_bin_type=True)
