import collections
import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genloop.rpc.protocol import (
    MAX_BUFFER_SIZE,
    MAX_MSGID,
    Connection,
    NotificationMessage,
    ProtocolError,
    RequestMessage,
    ResponseMessage,
    next_msgid,
)


def assert_same(got, want):
    """Equal *and* of the same types all the way down (1 == True == 1.0)."""
    assert type(got) is type(want), (got, want)
    if isinstance(want, list):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
    elif isinstance(want, dict):
        assert len(got) == len(want)
        for (gk, gv), (wk, wv) in zip(got.items(), want.items()):
            assert_same(gk, wk)
            assert_same(gv, wv)
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got)
    else:
        assert got == want
        if isinstance(want, float):
            assert math.copysign(1, got) == math.copysign(1, want)


def decode_all(data, chunks=None):
    conn = Connection()
    if chunks is None:
        return conn.receive_data(data)
    out = []
    for chunk in chunks:
        out.extend(conn.receive_data(chunk))
    return out


# -- round trip of every msgpack type ---------------------------------------

VALUES = [
    None,
    True,
    False,
    0,
    1,
    127,
    128,
    255,
    256,
    65535,
    65536,
    2**32 - 1,
    2**32,
    2**63 - 1,
    2**64 - 1,
    -1,
    -32,
    -33,
    -128,
    -129,
    -(2**31),
    -(2**63),
    0.0,
    -0.0,
    1.5,
    -2.25e300,
    float("inf"),
    float("-inf"),
    float("nan"),
    "",
    "ascii",
    "héllo wörld ✓ 𝄞 日本語",
    "x" * 70000,
    b"",
    b"\x00\xff\x80 binary",
    bytes(range(256)) * 300,
    [],
    [1, "two", 3.0, None, [b"four"]],
    list(range(70000)),
    {},
    {"a": 1},
    {1: "one", -2: "minus two", None: "nil", b"k": "bin", 1.5: "float", False: "f"},
    {"nested": {"deeper": [{"x": [1, {2: [3]}]}]}},
    dict.fromkeys(range(70000), 0),
    msgpack.ExtType(42, b"ext payload"),
    msgpack.ExtType(0, b""),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__ + ":" + repr(v)[:30])
def test_every_msgpack_type_round_trips(value):
    conn = Connection()
    msgid, req = conn.send_request("echo", [value])
    resp = conn.send_response(msgid, None, value)
    note = conn.send_notification("log", [value, value])
    got = Connection().receive_data(req + resp + note)
    assert [type(m) for m in got] == [RequestMessage, ResponseMessage, NotificationMessage]
    assert got[0].msgid == msgid and got[0].method == "echo"
    assert_same(got[0].params, [value])
    assert got[1].msgid == msgid and got[1].error is None
    assert_same(got[1].result, value)
    assert got[2].method == "log"
    assert_same(got[2].params, [value, value])


def test_error_response_round_trips():
    conn = Connection()
    data = conn.send_response(7, ["NoSuchMethod", "no method 'x'"], None)
    [msg] = Connection().receive_data(data)
    assert msg == ResponseMessage(7, ["NoSuchMethod", "no method 'x'"], None)


def test_tuple_and_other_sequences_are_sent_as_arrays():
    conn = Connection()
    for params in [(1, 2), range(1, 3), collections.deque([1, 2]), [1, 2]]:
        _, data = conn.send_request("m", params)
        assert msgpack.unpackb(data)[3] == [1, 2]
    assert msgpack.unpackb(conn.send_notification("m", (1, 2))) == [2, "m", [1, 2]]
    assert msgpack.unpackb(conn.send_notification("m")) == [2, "m", []]


@pytest.mark.parametrize("params", ["abc", b"abc", {"a": 1}, {1, 2}, 5, None])
def test_params_that_are_not_sequences_are_rejected(params):
    conn = Connection()
    with pytest.raises(TypeError, match="params"):
        conn.send_request("m", params)
    with pytest.raises(TypeError, match="params"):
        conn.send_notification("m", params)
    assert conn.send_request("m", [])[0] == 0  # the failed calls used no msgid


def test_bad_send_arguments_raise_and_keep_the_connection_usable():
    conn = Connection()
    with pytest.raises(TypeError, match="method"):
        conn.send_request(b"m", [])
    with pytest.raises(TypeError, match="method"):
        conn.send_notification(None, [])
    for bad in (-1, 2**32, "1", 1.0, True):
        with pytest.raises(ValueError, match="msgid"):
            conn.send_response(bad, None, 1)
    with pytest.raises(TypeError):
        conn.send_request("m", [object()])  # not serialisable
    with pytest.raises(OverflowError):
        conn.send_request("m", [2**64])
    msgid, data = conn.send_request("m", [1])
    assert msgid == 0  # failed encodings did not consume msgids
    assert msgpack.unpackb(data) == [0, 0, "m", [1]]  # packer buffer was reset


# -- framing -----------------------------------------------------------------


def sample_stream():
    conn = Connection(first_msgid=MAX_MSGID - 1)
    msgs, parts = [], []
    for method, params in [("a", [1, "x", b"y"]), ("bé", [{"k": [None, 1.5]}]), ("c", [])]:
        msgid, data = conn.send_request(method, params)
        msgs.append(RequestMessage(msgid, method, params))
        parts.append(data)
    parts.append(conn.send_response(3, None, {"r": [1, 2, 3]}))
    msgs.append(ResponseMessage(3, None, {"r": [1, 2, 3]}))
    parts.append(conn.send_notification("n", ["x" * 300]))
    msgs.append(NotificationMessage("n", ["x" * 300]))
    parts.append(conn.send_response(MAX_MSGID, "boom", None))
    msgs.append(ResponseMessage(MAX_MSGID, "boom", None))
    return msgs, b"".join(parts)


def test_back_to_back_messages_in_one_chunk():
    msgs, data = sample_stream()
    assert decode_all(data) == msgs


def test_split_at_every_byte_boundary_decodes_the_same():
    msgs, data = sample_stream()
    for i in range(len(data) + 1):
        conn = Connection()
        first = conn.receive_data(data[:i])
        rest = conn.receive_data(data[i:])
        assert first + rest == msgs, i
        # nothing is returned before the message completing it has arrived
        assert len(first) == len(decode_all(data[:i]))


def test_byte_by_byte_decodes_the_same():
    msgs, data = sample_stream()
    assert decode_all(data, [data[i : i + 1] for i in range(len(data))]) == msgs


def test_accepts_bytearray_and_memoryview():
    msgs, data = sample_stream()
    assert decode_all(bytearray(data)) == msgs
    assert decode_all(memoryview(data)) == msgs
    assert decode_all(b"") == []


hashable_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
values = st.recursive(
    hashable_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(hashable_scalars, inner, max_size=5),
    max_leaves=10,
)
msgids = st.integers(0, MAX_MSGID)
methods = st.text(max_size=30)
params = st.lists(values, max_size=5)
messages = st.lists(
    st.builds(RequestMessage, msgids, methods, params)
    | st.builds(ResponseMessage, msgids, values, values)
    | st.builds(NotificationMessage, methods, params),
    max_size=8,
)


def encode(conn, msg):
    if type(msg) is RequestMessage:
        conn._next_msgid = msg.msgid
        return conn.send_request(msg.method, msg.params)[1]
    if type(msg) is ResponseMessage:
        return conn.send_response(msg.msgid, msg.error, msg.result)
    return conn.send_notification(msg.method, msg.params)


@settings(max_examples=40, deadline=None)
@given(msgs=messages, data=st.data())
def test_arbitrary_messages_under_arbitrary_chunking(msgs, data):
    conn = Connection()
    stream = b"".join(encode(conn, m) for m in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    got = decode_all(stream, chunks)
    assert got == msgs
    # == on messages is type-strict per kind; check value types too
    for g, w in zip(got, msgs):
        for field in type(w).__slots__:
            assert_same(getattr(g, field), getattr(w, field))


# -- msgids ------------------------------------------------------------------


def test_next_msgid_wraps_at_2_pow_32():
    assert next_msgid(0) == 1
    assert next_msgid(MAX_MSGID - 1) == MAX_MSGID
    assert next_msgid(MAX_MSGID) == 0


def test_send_request_allocates_msgids_that_wrap():
    conn = Connection()
    assert [conn.send_request("m", [])[0] for _ in range(3)] == [0, 1, 2]
    conn = Connection(first_msgid=MAX_MSGID - 1)
    ids = [conn.send_request("m", [])[0] for _ in range(4)]
    assert ids == [MAX_MSGID - 1, MAX_MSGID, 0, 1]


def test_largest_msgid_goes_over_the_wire():
    conn = Connection(first_msgid=MAX_MSGID)
    msgid, data = conn.send_request("m", [])
    assert msgpack.unpackb(data) == [0, 2**32 - 1, "m", []]
    assert Connection().receive_data(data) == [RequestMessage(MAX_MSGID, "m", [])]


@pytest.mark.parametrize("bad", [-1, 2**32, "0", 1.5, None])
def test_first_msgid_must_be_u32(bad):
    with pytest.raises(ValueError):
        Connection(first_msgid=bad)


# -- invalid frames ----------------------------------------------------------

INVALID = {
    # wrong length
    "empty array": ([], "message type"),
    "short request": ([0, 1, "m"], "request must be an array of 4 elements, got 3"),
    "long request": ([0, 1, "m", [], 5], "request must be an array of 4 elements, got 5"),
    "short response": ([1, 1, None], "response must be an array of 4 elements, got 3"),
    "long response": ([1, 1, None, None, None], "response must be an array of 4 elements, got 5"),
    "short notification": ([2, "m"], "notification must be an array of 3 elements, got 2"),
    "long notification": ([2, "m", [], 1], "notification must be an array of 3 elements, got 4"),
    # wrong type code
    "type 3": ([3, 1, "m", []], "message type must be 0, 1 or 2, got 3"),
    "type -1": ([-1, 1, "m", []], "message type must be 0, 1 or 2, got -1"),
    "type str": (["0", 1, "m", []], "message type must be 0, 1 or 2, got '0'"),
    "type bool": ([False, 1, "m", []], "message type must be 0, 1 or 2, got False"),
    "type float": ([1.0, 1, None, None], "message type must be 0, 1 or 2, got 1.0"),
    "type nil": ([None, "m", []], "message type must be 0, 1 or 2, got None"),
    # bad msgid
    "negative msgid": ([0, -1, "m", []], "msgid must be an unsigned 32-bit integer, got -1"),
    "msgid 2**32": ([0, 2**32, "m", []], "unsigned 32-bit integer, got 4294967296"),
    "msgid 2**64-1": ([1, 2**64 - 1, None, 1], "unsigned 32-bit integer, got 18446744073709551615"),
    "msgid str": ([0, "1", "m", []], "msgid must be an unsigned 32-bit integer, got '1'"),
    "msgid float": ([1, 1.0, None, None], "msgid must be an unsigned 32-bit integer, got 1.0"),
    "msgid bool": ([0, True, "m", []], "msgid must be an unsigned 32-bit integer, got True"),
    "msgid nil": ([1, None, None, None], "msgid must be an unsigned 32-bit integer, got None"),
    # method not a string
    "method int": ([0, 1, 5, []], "method name must be a string, got 5"),
    "method nil": ([2, None, []], "method name must be a string, got None"),
    "method array": ([2, ["m"], []], "method name must be a string"),
    "method bad utf-8": ([0, 1, b"\xff\xfe", []], "method name is not valid UTF-8"),
    # params not an array
    "params map": ([0, 1, "m", {"a": 1}], "params must be an array, got {'a': 1}"),
    "params str": ([2, "m", "abc"], "params must be an array, got 'abc'"),
    "params nil": ([0, 1, "m", None], "params must be an array, got None"),
    "params int": ([2, "m", 5], "params must be an array, got 5"),
    # not an array at all
    "int": (5, "message must be an array, got 5"),
    "str": ("hello", "message must be an array, got 'hello'"),
    "map": ({0: 1}, "message must be an array, got {0: 1}"),
    "nil": (None, "message must be an array, got None"),
}

GARBAGE = {
    "reserved byte 0xc1": b"\xc1",
    "invalid utf-8 str": b"\x94\x00\x01\xa2\xff\xfe\x90",
    "array as map key": b"\x93\x02\xa1m\x91\x81\x91\x01\x02",
    "4 G element array header": b"\xdd\xff\xff\xff\xff",
}


@pytest.mark.parametrize("frame, match", INVALID.values(), ids=INVALID.keys())
def test_invalid_frame_raises_protocol_error(frame, match):
    data = msgpack.packb(frame, use_bin_type=True)
    conn = Connection()
    with pytest.raises(ProtocolError, match=match.replace("(", r"\(").replace("*", r"\*")) as info:
        conn.receive_data(data)
    assert info.value.messages == []


@pytest.mark.parametrize("data", GARBAGE.values(), ids=GARBAGE.keys())
def test_undecodable_bytes_raise_protocol_error(data):
    with pytest.raises(ProtocolError, match="undecodable msgpack data"):
        Connection().receive_data(data)


def test_garbage_split_across_chunks_still_raises():
    conn = Connection()
    assert conn.receive_data(b"\x93\x02") == []
    with pytest.raises(ProtocolError, match="undecodable"):
        conn.receive_data(b"\xc1")


def test_connection_is_unusable_after_a_protocol_error():
    good = msgpack.packb([2, "ok", []])
    conn = Connection()
    with pytest.raises(ProtocolError) as info:
        conn.receive_data(good + msgpack.packb([7, 1, "m", []]) + good)
    # the message before the bad frame is not lost
    assert info.value.messages == [NotificationMessage("ok", [])]
    with pytest.raises(ProtocolError, match="already failed.*message type"):
        conn.receive_data(good)


def test_protocol_error_is_sticky_after_undecodable_data_too():
    conn = Connection()
    with pytest.raises(ProtocolError):
        conn.receive_data(b"\xc1")
    with pytest.raises(ProtocolError, match="already failed"):
        conn.receive_data(msgpack.packb([2, "ok", []]))


def test_receive_frames_gives_each_message_as_its_array():
    conn = Connection()
    data = b"".join(msgpack.packb(m, use_bin_type=True) for m in
                    ([0, 7, "add", [1, 2]], [1, 7, None, 3], [1, 8, ["E", "x"], None], [2, "note", []]))
    assert conn.receive_frames(data) == [[0, 7, "add", [1, 2]], [1, 7, None, 3], [1, 8, ["E", "x"], None],
                                         [2, "note", []]]


def test_receive_frames_decodes_a_method_name_sent_as_bin():
    conn = Connection()
    data = msgpack.packb([0, 1, b"add", []], use_bin_type=True) + msgpack.packb([2, b"note", [1]], use_bin_type=True)
    assert conn.receive_frames(data) == [[0, 1, "add", []], [2, "note", [1]]]


def test_receive_frames_keeps_the_frames_before_a_bad_one():
    good = msgpack.packb([1, 3, None, "ok"])
    with pytest.raises(ProtocolError, match="msgid") as info:
        Connection().receive_frames(good + msgpack.packb([1, -3, None, None]))
    assert info.value.messages == [[1, 3, None, "ok"]]


def test_receive_split_gives_the_responses_apart_each_list_in_order():
    conn = Connection()
    data = b"".join(msgpack.packb(m, use_bin_type=True) for m in
                    ([0, 7, "add", [1, 2]], [1, 7, None, 3], [2, b"note", []], [1, 8, ["E", "x"], None]))
    assert conn.receive_split(data) == ([[1, 7, None, 3], [1, 8, ["E", "x"], None]],
                                        [[0, 7, "add", [1, 2]], [2, "note", []]])


def test_receive_split_keeps_the_frames_before_a_bad_one_responses_first():
    good = msgpack.packb([2, "note", []]) + msgpack.packb([1, 3, None, "ok"])
    with pytest.raises(ProtocolError, match="undecodable") as info:
        Connection().receive_split(good + b"\xc1")
    assert info.value.messages == [[1, 3, None, "ok"], [2, "note", []]]


# -- size limit --------------------------------------------------------------


def test_max_buffer_size_is_a_sane_constant():
    assert MAX_BUFFER_SIZE == 64 * 1024 * 1024


def test_frame_over_the_limit_is_rejected_however_it_is_chunked():
    frame = msgpack.packb([2, "m", list(range(100))])  # many small items, > 100 bytes
    assert len(frame) > 100
    for step in (1, 7, 50, len(frame)):
        conn = Connection(max_buffer_size=100)
        with pytest.raises(ProtocolError, match="larger than the 100-byte limit"):
            for i in range(0, len(frame), step):
                conn.receive_data(frame[i : i + step])


@pytest.mark.parametrize("header", [b"\xdb\xff\xff\xff\xff", b"\xc6\x00\x01\x00\x00", b"\xc9\x00\x00\x10\x00\x01",
                                    b"\xda\x00\x65", b"\xc5\x00\x65"])
def test_a_str_bin_or_ext_longer_than_the_frame_limit_is_refused_at_its_header(header):
    conn = Connection(max_buffer_size=100)
    with pytest.raises(ProtocolError, match="over the 100-byte frame limit"):
        conn.receive_data(b"\x94\x00\x01\xa1m\x92\xc3" + header)      # inside a request's params


def test_a_long_header_split_across_reads_is_refused_when_its_length_is_whole():
    conn = Connection(max_buffer_size=100)
    frame = msgpack.packb([2, "n", [1, "ok"]])
    assert conn.receive_data(frame + b"\x93\x02\xa1n\x91\xdb\x00") == [NotificationMessage("n", [1, "ok"])]
    assert conn.receive_data(b"\x01") == []
    with pytest.raises(ProtocolError, match="a str of 65536 bytes"):
        conn.receive_data(b"\x00\x00")


def test_long_payloads_within_the_limit_pass_whatever_the_chunking():
    frame = msgpack.packb([0, 1, "m", [b"b" * 300, "s" * 200, msgpack.ExtType(5, b"e" * 100), 2**40, -3.5]])
    for size in (1, 2, 3, 7, 64):
        conn = Connection(max_buffer_size=len(frame))
        got = []
        for i in range(0, len(frame) * 2, size):
            got += conn.receive_data((frame * 2)[i:i + size])
        assert len(got) == 2 and got[0] == got[1] and got[0].params[0] == b"b" * 300


def test_frame_exactly_at_the_limit_is_accepted():
    frame = msgpack.packb([2, "m", ["x" * 20]])
    conn = Connection(max_buffer_size=len(frame))
    for _ in range(3):
        assert conn.receive_data(frame) == [NotificationMessage("m", ["x" * 20])]
    conn = Connection(max_buffer_size=len(frame) - 1)
    with pytest.raises(ProtocolError):
        conn.receive_data(frame)


def test_one_large_read_of_many_small_frames_is_fine():
    frame = msgpack.packb([2, "m", [1, 2, 3]])
    data = frame * 1000  # far beyond the limit in total
    conn = Connection(max_buffer_size=50)
    assert conn.receive_data(data[:5]) == []
    got = conn.receive_data(data[5:])
    assert len(got) == 1000 and got[-1] == NotificationMessage("m", [1, 2, 3])


# -- interoperability with plain msgpack ---------------------------------------


def test_plain_msgpack_bytes_decode_as_messages():
    data = (
        msgpack.packb([0, 1, "m", [1, 2]])
        + msgpack.packb([1, 1, None, "ok"])
        + msgpack.packb([1, 2, "err", None])
        + msgpack.packb([2, "n", [{"a": b"b"}]])
    )
    assert Connection().receive_data(data) == [
        RequestMessage(1, "m", [1, 2]),
        ResponseMessage(1, None, "ok"),
        ResponseMessage(2, "err", None),
        NotificationMessage("n", [{"a": b"b"}]),
    ]


def test_old_raw_peers_and_bin_method_names_are_accepted():
    # msgpack without bin type sends every string as raw str; some peers send
    # the method name as bin. Both decode to a str method.
    old = msgpack.packb([0, 5, b"legacy", [b"x"]], use_bin_type=False)
    binary = msgpack.packb([2, "caf\u00e9".encode(), []], use_bin_type=True)
    assert Connection().receive_data(old + binary) == [
        RequestMessage(5, "legacy", ["x"]),
        NotificationMessage("café", []),
    ]


def test_our_bytes_are_spec_arrays_for_plain_msgpack():
    conn = Connection(first_msgid=41)
    msgid, req = conn.send_request("add", (1, 2))
    assert msgid == 41
    assert msgpack.unpackb(req) == [0, 41, "add", [1, 2]]
    assert msgpack.unpackb(conn.send_response(41, None, 3)) == [1, 41, None, 3]
    assert msgpack.unpackb(conn.send_response(41, "Boom", None)) == [1, 41, "Boom", None]
    assert msgpack.unpackb(conn.send_notification("ping", [b"\x00"])) == [2, "ping", [b"\x00"]]
    # str is sent as str and bytes as bin (use_bin_type=True)
    assert req[3:7] == b"\xa3add"
    assert msgpack.packb(b"\x00", use_bin_type=True) in conn.send_notification("p", [b"\x00"])


# -- message objects -----------------------------------------------------------


def test_messages_compare_by_kind_and_fields():
    assert RequestMessage(1, "m", [1]) == RequestMessage(1, "m", [1])
    assert RequestMessage(1, "m", [1]) != RequestMessage(2, "m", [1])
    assert RequestMessage(1, "m", [1]) != ResponseMessage(1, "m", [1])
    assert RequestMessage(1, "m", [1]) != (1, "m", [1])
    assert NotificationMessage("m", []) != NotificationMessage("n", [])
    assert repr(ResponseMessage(1, None, 2)) == "ResponseMessage(msgid=1, error=None, result=2)"


def test_messages_are_slotted_and_matchable():
    msg = RequestMessage(3, "m", [])
    with pytest.raises(AttributeError):
        msg.extra = 1
    match msg:
        case ResponseMessage():
            kind = "response"
        case RequestMessage(msgid, method, params):
            kind = ("request", msgid, method, params)
    assert kind == ("request", 3, "m", [])
