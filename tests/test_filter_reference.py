"""kernelish.filters.Reference: POE::Filter::Reference (POE-SEMANTICS 9)."""

from __future__ import annotations

import errno
import json
import pickle
import shutil
import subprocess
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernelish._params import ParameterError
from kernelish.filters import FilterError, RecordTooLong, Reference
from kernelish.filters._line import DEFAULT_MAX_BUFFER


def frame(payload: bytes) -> bytes:
    return b"%d\0%b" % (len(payload), payload)


# (input chunks, one get() each) -> (records, get_pending()), with Serializer=json.
INPUT_CASES: dict[str, tuple[list[bytes], list[Any], list[bytes] | None]] = {
    "one frame": ([b'7\0{"a":1}'], [{"a": 1}], None),
    "two frames in one read": ([b"1\x0015\x00[1,2]"], [1, [1, 2]], None),
    "frame split in its payload": ([b"5\0[1,", b"2]"], [[1, 2]], None),
    "frame split in its header": ([b"1", b"\x001"], [1], None),
    "split right after the NUL": ([b"1\0", b"7"], [7], None),
    "partial frame stays pending": ([b'1\x0025\x00"ab'], [2], [b'5\x00"ab']),
    "header only": ([b"12"], [], [b"12"]),
    "empty chunks": ([b"", b"1\x003", b""], [3], None),
    "leading zeros in the length": ([b"0002\x0042"], [42], None),
    "utf-8 payload": ([frame('"\u00e9\u20ac"'.encode())], ["\u00e9\u20ac"], None),
}


def feed_get(ref: Reference, chunks: list[bytes]) -> list[Any]:
    return [record for chunk in chunks for record in ref.get([chunk])]


def feed_get_one(ref: Reference, chunks: list[bytes]) -> list[Any]:
    records: list[Any] = []
    for chunk in chunks:
        ref.get_one_start([chunk])
        while batch := ref.get_one():
            assert len(batch) == 1
            records += batch
    return records


@pytest.mark.parametrize("feed", [feed_get, feed_get_one])
@pytest.mark.parametrize("case", INPUT_CASES.values(), ids=list(INPUT_CASES))
def test_input_table(case: tuple[list[bytes], list[Any], list[bytes] | None], feed: Any) -> None:
    chunks, records, pending = case
    ref = Reference(Serializer=json)
    assert feed(ref, chunks) == records
    assert ref.get_pending() == pending


def test_several_chunks_in_one_get() -> None:
    assert Reference(Serializer=json).get([b"1\x00", b"1", b"1\x002"]) == [1, 2]


def test_put_writes_poes_frame() -> None:
    ref = Reference(Serializer=json)
    assert ref.put([{"a": 1}, [1, 2], "x"]) == [b'8\x00{"a": 1}', b"6\x00[1, 2]", b'3\x00"x"']
    assert ref.put([]) == []


OBJECTS = [
    {"cmd": "query", "sql": "SELECT 1", "args": [1, 2.5, None, True], "id": 7},
    [],
    "",
    0,
    {"nested": {"deep": [{"x": "\u00e9" * 30}]}},
    list(range(300)),
]


@pytest.mark.parametrize("serializer", [pickle, json], ids=["pickle", "json"])
@pytest.mark.parametrize("compression", [False, True], ids=["plain", "zlib"])
def test_every_split_point_gives_the_same_records(serializer: Any, compression: bool) -> None:
    stream = b"".join(Reference(Serializer=serializer, Compression=compression).put(OBJECTS))
    for cut in range(len(stream) + 1):
        ref = Reference(Serializer=serializer, Compression=compression)
        got = ref.get([stream[:cut]]) + ref.get([stream[cut:]])
        assert got == OBJECTS, f"split at {cut}"
        assert ref.get_pending() is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(
    objects=st.lists(json_values, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
    one_by_one=st.booleans(),
)
def test_random_splits_round_trip(objects: list[Any], cuts: list[int], one_by_one: bool) -> None:
    stream = b"".join(Reference(Serializer=json).put(objects))
    points = sorted({min(cut, len(stream)) for cut in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    ref = Reference(Serializer=json)
    got = feed_get_one(ref, chunks) if one_by_one else feed_get(ref, chunks)
    assert got == objects
    assert ref.get_pending() is None


def test_pickle_is_the_default_and_carries_python_objects() -> None:
    ref = Reference()
    value = {"set": {1, 2}, "tuple": (1, "a"), "bytes": b"\0\xff", "exc": ValueError("x")}
    (got,) = ref.get(ref.put([value]))
    assert got["set"] == {1, 2}
    assert got["tuple"] == (1, "a")
    assert got["bytes"] == b"\0\xff"
    assert isinstance(got["exc"], ValueError)


# -- bad input -------------------------------------------------------------------------------

BOGUS = {
    "letters": b"abc\0xyz",
    "negative": b"-5\0hello",
    "plus sign": b"+5\0hello",
    "space": b" 5\0hello",
    "trailing space": b"5 \0hello",
    "underscore": b"1_0\0xxxxxxxxxx",
    "empty length": b"\0",
    "non-ascii digits": "\u0661\0x".encode(),
    "garbage, no NUL": b"GET / HTTP/1.0\r\n",
}


@pytest.mark.parametrize("feed", [feed_get, feed_get_one])
@pytest.mark.parametrize("data", BOGUS.values(), ids=list(BOGUS))
def test_bogus_length_prefix_is_an_error_at_once(data: bytes, feed: Any) -> None:
    ref = Reference(Serializer=json)
    with pytest.raises(FilterError, match="bogus length prefix") as info:
        feed(ref, [data])
    assert not isinstance(info.value, RecordTooLong)
    assert info.value.errno == errno.EINVAL
    # The stream cannot be resynchronised: the buffer is gone, later frames parse afresh.
    assert ref.get_pending() is None
    assert ref.get([b"1\x005"]) == [5]


def test_first_wrong_octet_fails_without_waiting_for_a_nul() -> None:
    ref = Reference(Serializer=json)
    assert ref.get([b"12"]) == []
    with pytest.raises(FilterError, match="bogus"):
        ref.get([b"x"])


def test_length_over_max_buffer_is_refused_before_its_payload() -> None:
    ref = Reference(Serializer=json, MaxBuffer=1000)
    with pytest.raises(RecordTooLong, match="frame of 999 octets exceeds the limit") as info:
        ref.get([b"999\0"])
    assert info.value.errno == errno.EMSGSIZE
    assert ref.get_pending() is None


def test_endless_length_prefix_is_refused_within_a_few_octets() -> None:
    ref = Reference(Serializer=json)  # default MaxBuffer: 64 MiB, 8 digits
    with pytest.raises(RecordTooLong, match="more than 8 digits"):
        ref.get([b"123456789"])
    ref = Reference(Serializer=json)
    assert ref.get([b"12345678"]) == []  # could still be a length
    with pytest.raises(RecordTooLong):
        ref.get([b"9"])


def test_largest_frame_that_fits_is_accepted() -> None:
    limit = 200
    ref = Reference(Serializer=json, MaxBuffer=limit)
    payload = b'"' + b"x" * (limit - 6) + b'"'  # 196 + "196\0" = 200 octets
    assert ref.get([frame(payload)]) == ["x" * (limit - 6)]
    with pytest.raises(RecordTooLong):
        ref.get([frame(payload + b" ")])


def test_max_buffer_bounds_what_a_slow_frame_may_hold() -> None:
    # A peer announces a 60 MB frame, then sends it slowly: held, but never past MaxBuffer;
    # then it lies about the rest: more octets than announced are framed as the next frame.
    ref = Reference(Serializer=json)
    ref.get([b"60000000\0"])
    chunk = b" " * 65536
    for _ in range(200):
        assert ref.get([chunk]) == []
    pending = ref.get_pending()
    assert pending is not None
    assert len(pending[0]) == 9 + 200 * 65536


def test_a_flood_of_unframed_octets_never_buffers_past_max_buffer() -> None:
    ref = Reference(Serializer=json, MaxBuffer=1 << 20)
    ref.get([b"1048500\0"])

    def flood() -> None:
        for _ in range(100):
            ref.get([b"x" * 65536])

    with pytest.raises(RecordTooLong, match="framing buffer exceeds MaxBuffer"):
        flood()
    assert ref.get_pending() is None


def test_truncated_frame_is_only_pending() -> None:
    ref = Reference(Serializer=json)
    assert ref.get([b'10\0{"a":']) == []
    assert ref.get_pending() == [b'10\0{"a":']


def reads(chunks: list[bytes], joined: bool) -> list[bytes]:
    """The chunks as they are, or as one read (get's in-place path)."""
    return [b"".join(chunks)] if joined else chunks


JOINED = pytest.mark.parametrize("joined", [False, True], ids=["several reads", "one read"])


@JOINED
def test_error_after_good_frames_comes_on_the_next_call(joined: bool) -> None:
    ref = Reference(Serializer=json)
    assert ref.get(reads([b"1\x001", b"1\x002xyz\0", b"1\x003"], joined)) == [1, 2]
    assert ref.deferred_error is not None  # the wheels ask again at once
    with pytest.raises(FilterError, match="bogus"):
        ref.get([])
    assert ref.deferred_error is None
    # What came behind the error is dropped with the buffer (the stream is out of step)
    # when it came in the same read; a later read is kept, and parsed now.
    assert ref.get([]) == ([] if joined else [3])


@JOINED
def test_thaw_error_consumes_only_its_frame(joined: bool) -> None:
    ref = Reference(Serializer=json)
    assert ref.get(reads([b"1\x001", b"3\x00{{{", b"1\x002"], joined)) == [1]
    with pytest.raises(FilterError, match=r"cannot thaw a frame of 3 octets \(JSONDecodeError"):
        ref.get([])
    assert ref.get([]) == [2]


@JOINED
def test_thaw_error_raised_first_keeps_the_rest(joined: bool) -> None:
    ref = Reference()
    with pytest.raises(FilterError, match="cannot thaw") as info:
        ref.get(reads([b"3\0abc", b"2\x00N."], joined))  # not a pickle, then pickle's None
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)
    assert ref.get([]) == [None]


def test_thaw_error_of_a_lone_frame() -> None:
    ref = Reference()
    with pytest.raises(FilterError, match="cannot thaw a frame of 3 octets"):
        ref.get([b"3\0abc"])
    assert ref.get_pending() is None
    (error,) = Reference(NoFatals=True).get([b"3\0abc"])
    assert isinstance(error, FilterError)


@JOINED
def test_no_fatals_turns_errors_into_records(joined: bool) -> None:
    # POE: the text of $@ becomes the record.  Here: the FilterError itself.
    ref = Reference(Serializer=json, NoFatals=True)
    got = ref.get(reads([b"1\x001", b"3\x00{{{", b"1\x002"], joined))
    assert got[0] == 1
    assert isinstance(got[1], FilterError)
    assert "cannot thaw" in str(got[1])
    assert got[2] == 2
    (bogus,) = ref.get([b"xyz\0"])
    assert isinstance(bogus, FilterError)
    assert "bogus" in str(bogus)
    assert ref.get([b"1\x009"]) == [9]


def test_no_fatals_buffer_overflow_is_a_record() -> None:
    ref = Reference(Serializer=json, NoFatals=True, MaxBuffer=100)
    assert ref.get([b"90\0" + b"x" * 50]) == []
    (error,) = ref.get([b"x" * 60])
    assert isinstance(error, RecordTooLong)
    assert ref.get_pending() is None


def test_compressed_frames_are_zlib_as_compress_zlib_writes_them() -> None:
    ref = Reference(Serializer=json, Compression=True)
    (data,) = ref.put([{"a": "b" * 100}])
    length, payload = data.split(b"\0", 1)
    assert int(length) == len(payload)
    assert json.loads(zlib.decompress(payload)) == {"a": "b" * 100}
    assert ref.get([data]) == [{"a": "b" * 100}]


def test_compression_bomb_inflates_only_to_max_buffer() -> None:
    bomb = zlib.compress(b"[" + b" " * (4 << 20) + b"]", 9)  # 4 MiB of JSON, ~4 KiB packed
    ref = Reference(Serializer=json, Compression=True, MaxBuffer=1 << 20)
    with pytest.raises(RecordTooLong, match="inflates past MaxBuffer"):
        ref.get([frame(bomb)])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (zlib.compress(b"[1]")[:-3], "truncated compressed frame"),
        (b"not zlib at all", "corrupt compressed frame"),
    ],
)
def test_bad_compressed_frames(payload: bytes, message: str) -> None:
    ref = Reference(Serializer=json, Compression=True)
    with pytest.raises(FilterError, match=message):
        ref.get([frame(payload)])
    assert ref.get([ref.put([5])[0]]) == [5]


def test_put_propagates_serializer_errors() -> None:
    with pytest.raises(TypeError):
        Reference(Serializer=json).put([{1, 2}])
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        Reference().put([lambda: None])


# -- parameters ------------------------------------------------------------------------------


class Codec:
    """A serializer instance of one's own."""

    def dumps(self, value: Any) -> bytes:
        return repr(value).encode()

    def loads(self, data: bytes) -> Any:
        return ("thawed", data.decode())


class FreezeThaw:
    """POE's method names: nfreeze is preferred to freeze."""

    def freeze(self, value: Any) -> bytes:
        raise AssertionError("nfreeze comes first")

    def nfreeze(self, value: Any) -> bytes:
        return json.dumps(value).encode()

    def thaw(self, data: bytes) -> Any:
        return json.loads(data)


@pytest.mark.parametrize(
    ("serializer", "record", "expected"),
    [
        ("json", [1], [1]),
        ((json.dumps, json.loads), {"a": 1}, {"a": 1}),
        (Codec(), 5, ("thawed", "5")),
        (FreezeThaw(), [2], [2]),
        (pickle, (1, 2), (1, 2)),
    ],
    ids=["module name", "pair", "instance", "freeze and thaw", "module"],
)
def test_serializer_forms(serializer: Any, record: Any, expected: Any) -> None:
    ref = Reference(Serializer=serializer)
    assert ref.get(ref.put([record])) == [expected]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"Serializer": "no_such_module_xyz"}, "Serializer names no importable module"),
        ({"Serializer": "string"}, "module 'string' has no dumps"),
        ({"Serializer": object()}, "Serializer must have dumps"),
        ({"Serializer": (json.dumps, 5)}, "Serializer as a pair must be two callables"),
        ({"MaxBuffer": 0}, "MaxBuffer must be greater than 0"),
        ({"MaxBuffer": "big"}, "MaxBuffer must be int"),
        ({"Compression": "maybe"}, "Compression"),
        ({"Bogus": 1}, "unknown parameter 'Bogus'"),
        ({"Serializer": json, "serializer": json}, "given twice"),
    ],
)
def test_parameter_errors_name_the_parameter(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        Reference(**params)


def test_snake_case_and_positional_forms() -> None:
    ref = Reference(serializer=json, compression=True, no_fatals=True, max_buffer=1000)
    assert ref.get(Reference("json", True).put([[1]])) == [[1]]
    # POE's old form new($serializer, $compression, $no_fatals):
    (bad,) = Reference(json, False, True).get([b"1\0{"])
    assert isinstance(bad, FilterError)
    with pytest.raises(TypeError, match="both by position and by name"):
        Reference(json, Serializer=json)
    with pytest.raises(TypeError, match="at most 3"):
        Reference(json, False, False, 1)


def test_defaults() -> None:
    assert DEFAULT_MAX_BUFFER == 64 * 1024 * 1024
    ref = Reference()
    assert ref.get(ref.put([{"k": "v"}])) == [{"k": "v"}]


def test_clone_is_independent() -> None:
    ref = Reference(Serializer=json, MaxBuffer=100)
    assert ref.get([b"2\x001"]) == []
    twin = ref.clone()
    assert twin.get_pending() is None
    assert twin.get([b"1\x007"]) == [7]
    assert ref.get([b"0"]) == [10]
    with pytest.raises(RecordTooLong):
        twin.get([b"100\0"])  # same limit
    assert twin.put(["x"]) == [b'3\x00"x"']  # same serializer


# -- POE itself -------------------------------------------------------------------------------

PERL_ECHO = r"""
use strict; use warnings;
use POE qw(Filter::Reference);
{ package JSONSer; use JSON::PP;
  my $j = JSON::PP->new->utf8->canonical->allow_nonref;
  sub freeze { $j->encode($_[0]) } sub thaw { $j->decode($_[0]) } }
binmode STDIN; binmode STDOUT;
my $f = POE::Filter::Reference->new(Serializer => 'JSONSer', Compression => $ARGV[0]);
local $/; my $in = <STDIN>;
print @{ $f->put([ map { { got => $_ } } @{ $f->get([$in]) } ]) };
"""


def _have_poe() -> bool:
    if shutil.which("perl") is None:
        return False
    probe = subprocess.run(
        ["perl", "-MPOE", "-MJSON::PP", "-MCompress::Zlib", "-e1"], capture_output=True
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _have_poe(), reason="perl with POE, JSON::PP and Compress::Zlib needed")
@pytest.mark.parametrize("compression", [False, True], ids=["plain", "zlib"])
def test_frames_interoperate_with_poe_filter_reference(compression: bool) -> None:
    """Python frames are read by POE::Filter::Reference, which answers with frames of its own
    that Python reads: both ways, with a JSON serializer on each side."""
    objects = [
        {"id": 1, "sql": "SELECT name FROM t WHERE x = ?", "args": [1, 2.5, None]},
        ["\u00e9t\u00e9", "\u20ac", ""],
        {"big": "x" * 100_000},
        42,
    ]
    ref = Reference(Serializer=json, Compression=compression)
    proc = subprocess.run(
        ["perl", "-e", PERL_ECHO, "1" if compression else "0"],
        input=b"".join(ref.put(objects)),
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert ref.get([proc.stdout]) == [{"got": obj} for obj in objects]
    assert ref.get_pending() is None
