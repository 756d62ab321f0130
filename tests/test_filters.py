"""kernelish.filters: POE::Filter::Line and POE::Filter::Stream (POE-SEMANTICS 7.3)."""

from __future__ import annotations

import errno
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernelish._params import ParameterError
from kernelish.filters import Filter, FilterError, Line, RecordTooLong, Stream
from kernelish.filters._line import DEFAULT_MAX_BUFFER, DEFAULT_MAX_LENGTH

Case = tuple[dict[str, Any], list[bytes], list[str], list[bytes] | None]

# (Line parameters, input chunks (one get() each), records, get_pending()) — POE-SEMANTICS 7.3.
INPUT_CASES: dict[str, Case] = {
    "lf": ({}, [b"a\nb\n"], ["a", "b"], None),
    "crlf": ({}, [b"a\r\nb\r\n"], ["a", "b"], None),
    "cr": ({}, [b"a\rb\r"], ["a", "b"], None),
    "lfcr": ({}, [b"a\n\rb\n\r"], ["a", "b"], None),
    "empty line, leftover": ({}, [b"a\r\n\r\nb"], ["a", ""], [b"b"]),
    "lf lf": ({}, [b"a\n\n"], ["a", ""], None),
    "cr then crlf": ({}, [b"a\r\r\n"], ["a", ""], None),
    "crlf split across reads": ({}, [b"a\r", b"\nb\r\n"], ["a", "", "b"], None),
    "lfcr split across reads": ({}, [b"a\n", b"\rb\n"], ["a", "", "b"], None),
    "unterminated never emitted": ({}, [b"abc"], [], [b"abc"]),
    "line across reads": ({}, [b"ab", b"c", b"\r\nd"], ["abc"], [b"d"]),
    "empty chunks": ({}, [b"", b"a", b"", b"\n"], ["a"], None),
    "literal lf": ({"Literal": "\n"}, [b"a\r\nb\n"], ["a\r", "b"], None),
    "literal crlf split": ({"Literal": "\r\n"}, [b"a\r", b"\nb\r\n"], ["a", "b"], None),
    "literal straddles reads": (
        {"Literal": b"<END>"},
        [b"a<E", b"N", b"D>b<END>c<"],
        ["a", "b"],
        [b"c<"],
    ),
    "input literal": ({"InputLiteral": "|"}, [b"a|b\n|c"], ["a", "b\n"], [b"c"]),
    "autodetect crlf": ({"InputLiteral": None}, [b"a\r\nb\nc\r\n"], ["a", "b\nc"], None),
    "autodetect empty string": ({"InputLiteral": ""}, [b"a\r\nb\nc\r\n"], ["a", "b\nc"], None),
    "autodetect lf": ({"InputLiteral": None}, [b"a\nb\r\nc\n"], ["a", "b\r", "c"], None),
    "autodetect split crlf": (
        {"InputLiteral": None},
        [b"a\r", b"\nb\r\nc\r"],
        ["a", "b"],
        [b"c\r"],
    ),
    "autodetect lone cr": ({"InputLiteral": None}, [b"a\r", b"b\rc\r"], ["a", "b", "c"], None),
    "input regexp": (
        {"InputRegexp": "([\\x0D\\x0A]{2,})"},
        [b"p1\n\np2\r\n\r\n", b"p3\n"],
        ["p1", "p2"],
        [b"p3\n"],
    ),
    "compiled regexp": ({"InputRegexp": re.compile(r"\|+")}, [b"a||b||c"], ["a", "b"], [b"c"]),
    # Like POE, a regexp match at the end of the buffer is final, even if more could follow.
    "regexp split across reads": (
        {"InputRegexp": b"\\|+"},
        [b"a||b|", b"|c"],
        ["a", "b", ""],
        [b"c"],
    ),
}


def feed_get(line: Line, chunks: list[bytes]) -> list[Any]:
    return [record for chunk in chunks for record in line.get([chunk])]


def feed_get_one(line: Line, chunks: list[bytes]) -> list[Any]:
    records: list[Any] = []
    for chunk in chunks:
        line.get_one_start([chunk])
        while batch := line.get_one():
            assert len(batch) == 1
            records += batch
    return records


@pytest.mark.parametrize("feed", [feed_get, feed_get_one])
@pytest.mark.parametrize("case", INPUT_CASES.values(), ids=list(INPUT_CASES))
def test_line_input_table(case: Case, feed: Any) -> None:
    params, chunks, records, pending = case
    line = Line(**params)
    assert feed(line, chunks) == records
    assert line.get_pending() == pending


def test_get_with_several_chunks_at_once() -> None:
    # One get() with several chunks is one read of their concatenation, as in POE.
    assert Line().get([b"a\r", b"\nb\n"]) == ["a", "b"]


# -- output --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "records", "expected"),
    [
        ({}, ["x", "y\n", ""], [b"x\r\n", b"y\n\r\n", b"\r\n"]),
        ({}, [b"x", bytearray(b"y"), memoryview(b"z")], [b"x\r\n", b"y\r\n", b"z\r\n"]),
        ({"OutputLiteral": "\n"}, ["x"], [b"x\n"]),
        ({"Literal": "\0"}, ["x"], [b"x\0"]),
        ({"InputLiteral": None}, ["x"], [b"x\r\n"]),
        ({"Encoding": None}, [b"x", "\u00e9"], [b"x\r\n", b"\xc3\xa9\r\n"]),
        ({"Encoding": "latin-1"}, ["\u00e9"], [b"\xe9\r\n"]),
    ],
)
def test_line_output(params: dict[str, Any], records: list[Any], expected: list[bytes]) -> None:
    assert Line(**params).put(records) == expected


# -- encodings -----------------------------------------------------------------------------


def test_bytes_mode_returns_bytes() -> None:
    line = Line(Encoding=None)
    assert line.get([b"a\xff\nb"]) == [b"a\xff"]
    assert line.get_pending() == [b"b"]


def test_default_mode_decodes_utf8() -> None:
    assert Line().get(["\u00e9t\u00e9\n".encode()]) == ["\u00e9t\u00e9"]


def test_utf8_sequence_split_across_reads() -> None:
    data = "\u20ac\n".encode()
    line = Line()
    assert line.get([data[:2]]) == []
    assert line.get([data[2:]]) == ["\u20ac"]


def test_binary_garbage_round_trips_through_surrogateescape() -> None:
    garbage = bytes(range(256)).replace(b"\r", b"").replace(b"\n", b"") + b"\xc3\xff\xed\xa0"
    line = Line()
    (record,) = line.get([garbage + b"\r\n"])
    assert isinstance(record, str)
    assert line.put([record]) == [garbage + b"\r\n"]


def test_non_ascii_compatible_encoding_is_refused() -> None:
    with pytest.raises(ParameterError, match="Encoding must be an ASCII-compatible codec"):
        Line(Encoding="utf-16")


# -- limits --------------------------------------------------------------------------------


def test_limit_defaults() -> None:
    assert DEFAULT_MAX_LENGTH == 1024 * 1024
    assert DEFAULT_MAX_BUFFER == 64 * 1024 * 1024


def test_endless_line_keeps_memory_bounded() -> None:
    # A peer sends 100 MB without a newline in 64 KiB reads.
    line = Line()
    chunk = b"x" * 65536
    errors: list[RecordTooLong] = []
    for _ in range(100 * 1024 * 1024 // len(chunk)):
        try:
            assert line.get([chunk]) == []
        except RecordTooLong as exc:
            errors.append(exc)
        pending = line.get_pending()
        assert pending is None or len(pending[0]) <= DEFAULT_MAX_LENGTH
    assert len(errors) == 1
    assert errors[0].errno == errno.EMSGSIZE
    assert isinstance(errors[0], FilterError)
    assert isinstance(errors[0], ValueError)
    # The rest of the overlong line is dropped up to its terminator; framing resumes.
    assert line.get([b"end of the long line\r\nnext\r\n"]) == ["next"]
    assert line.get_pending() is None


# Parameters, and what follows the discarded line when its CRLF straddles two reads.
LIMIT_MODES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "generic": ({}, ["", "ok"]),  # POE's spurious empty record for a split CRLF
    "literal": ({"Literal": "\r\n"}, ["ok"]),
    "regexp": ({"InputRegexp": "\r\n"}, ["ok"]),
    "autodetect": ({"InputLiteral": None}, ["ok"]),
}


@pytest.mark.parametrize("feed", [feed_get, feed_get_one])
@pytest.mark.parametrize("mode", LIMIT_MODES.values(), ids=list(LIMIT_MODES))
def test_unterminated_overflow_then_resync(
    mode: tuple[dict[str, Any], list[str]], feed: Any
) -> None:
    params, after = mode
    line = Line(MaxLength=1000, **params)
    assert feed(line, [b"first\r\n"]) == ["first"]
    for index in range(50):
        if index == 3:
            # 4 * 300 octets > MaxLength: reported once, then silently discarded.
            with pytest.raises(RecordTooLong, match="exceeds MaxLength"):
                feed(line, [b"y" * 300])
        else:
            assert feed(line, [b"y" * 300]) == []
        pending = line.get_pending()
        assert pending is None or len(pending[0]) <= 1000
    # The terminator straddles two reads right after the discard point.
    assert feed(line, [b"yyy\r", b"\nok\r\n"]) == after


def test_complete_overlong_record_get_delivers_earlier_records_first() -> None:
    line = Line(MaxLength=5)
    assert line.get([b"ok\n123456\nafter\n"]) == ["ok"]
    with pytest.raises(RecordTooLong, match="record of 6 octets exceeds MaxLength"):
        line.get([b"x\n"])
    assert line.get([]) == ["after", "x"]


def test_read_after_an_overlong_line_is_still_parsed_on_arrival() -> None:
    # The CR ending one read and the LF starting the next stay two terminators, as in POE,
    # even though the first get() had an error to report.
    line = Line(MaxLength=3)
    assert line.get([b"ok\n123456\nab\r"]) == ["ok"]
    with pytest.raises(RecordTooLong):
        line.get([b"\ncd\n"])
    assert line.get([]) == ["ab", "", "cd"]
    assert line.get([]) == []


def test_complete_overlong_record_get_one_is_in_order() -> None:
    line = Line(MaxLength=5, Encoding=None)
    line.get_one_start([b"ok\n123456\nafter\n"])
    assert line.get_one() == [b"ok"]
    with pytest.raises(RecordTooLong):
        line.get_one()
    assert line.get_one() == [b"after"]
    assert line.get_one() == []


def test_overlong_record_first_raises_at_once() -> None:
    line = Line(MaxLength=5)
    with pytest.raises(RecordTooLong):
        line.get([b"123456\nafter\n"])
    assert line.get([]) == ["after"]


def test_record_of_exactly_max_length_is_fine() -> None:
    line = Line(MaxLength=5)
    assert line.get([b"12345\n", b"67890"]) == ["12345"]
    assert line.get_pending() == [b"67890"]
    with pytest.raises(RecordTooLong):
        line.get([b"1"])


def test_max_buffer_discards_everything_and_resyncs() -> None:
    line = Line(MaxLength=4, MaxBuffer=8)
    line.get_one_start([b"ab\ncd\n"])
    with pytest.raises(RecordTooLong, match="MaxBuffer"):
        line.get_one_start([b"ef\ngh"])
    assert line.get_pending() is None
    assert line.get([b"h\nok\n"]) == ["ok"]


def test_max_buffer_must_cover_max_length() -> None:
    with pytest.raises(ParameterError, match=r"MaxBuffer \(5\) must be at least MaxLength \(6\)"):
        Line(MaxLength=6, MaxBuffer=5)


# -- parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"Literal": ""}, "Line: a defined Literal must have a nonzero length"),
        ({"Literal": "x", "InputLiteral": None}, "Line: Literal cannot be combined"),
        ({"Literal": "x", "OutputLiteral": "y"}, "Line: Literal cannot be combined"),
        ({"InputLiteral": "x", "InputRegexp": "y"}, "Line: cannot have both InputLiteral"),
        ({"InputRegexp": "("}, "Line: InputRegexp is not a valid regular expression"),
        ({"InputRegexp": "x*"}, "Line: InputRegexp must not match an empty string"),
        ({"MaxLength": 0}, "Line: MaxLength must be greater than 0 (got 0)"),
        ({"MaxLength": "10"}, "Line: MaxLength must be int (got '10')"),
        ({"Encoding": "no-such-codec"}, "Line: Encoding is not a known codec"),
        ({"Litteral": "x"}, "Line: unknown parameter 'Litteral'"),
    ],
)
def test_line_parameter_errors(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError) as info:
        Line(**params)
    assert str(info.value).startswith(message)


def test_snake_case_parameters() -> None:
    line = Line(literal="|", max_length=3, encoding=None)
    assert line.get([b"abc|"]) == [b"abc"]
    with pytest.raises(RecordTooLong):
        line.get([b"abcd|"])


# -- clone ---------------------------------------------------------------------------------


def test_clone_has_same_config_and_empty_buffer() -> None:
    line = Line(Literal="|", Encoding=None)
    assert line.get([b"a|b"]) == [b"a"]
    twin = line.clone()
    assert type(twin) is Line
    assert twin.get_pending() is None
    assert twin.get([b"x|"]) == [b"x"]
    assert twin.put([b"y"]) == [b"y|"]
    assert line.get_pending() == [b"b"]


def test_clone_of_autodetecting_filter_detects_afresh() -> None:
    line = Line(InputLiteral=None)
    assert line.get([b"a\r\nb\n"]) == ["a"]
    assert line.clone().get([b"a\nb\n"]) == ["a", "b"]


# -- equivalence with POE's algorithm -------------------------------------------------------


def poe_get(chunks: list[bytes], terminator: bytes) -> tuple[list[bytes], bytes]:
    """POE::Filter::Line::get, transliterated: search the whole buffer after every read."""
    buffer = b""
    records: list[bytes] = []
    for chunk in chunks:
        buffer += chunk
        while match := re.search(terminator, buffer, re.S):
            records.append(buffer[: match.start()])
            buffer = buffer[match.end() :]
    return records, buffer


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(derandomize=True, database=None, max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=300).map(lambda b: bytes(b"a\r\n|"[x % 4] for x in b)),
    cuts=st.lists(st.integers(0, 300), max_size=8),
    mode=st.sampled_from([(), ("Literal", b"\r\n"), ("Literal", b"||"), ("InputRegexp", b"\n+")]),
    one_by_one=st.booleans(),
)
def test_matches_poe_algorithm(
    data: bytes, cuts: list[int], mode: tuple[Any, ...], one_by_one: bool
) -> None:
    params: dict[str, Any] = {"Encoding": None}
    terminator = rb"\r\n?|\n\r?"
    if mode:
        params[mode[0]] = mode[1]
        terminator = re.escape(mode[1]) if mode[0] == "Literal" else mode[1]
    chunks = split_at(data, cuts)
    line = Line(**params)
    records = (feed_get_one if one_by_one else feed_get)(line, chunks)
    expected, leftover = poe_get(chunks, terminator)
    assert records == expected
    assert line.get_pending() == ([leftover] if leftover else None)


def poe_get_limited(
    chunks: list[bytes], terminator: bytes, max_length: int, keep: int
) -> tuple[list[bytes | str], bytes]:
    """poe_get plus kernelish's MaxLength rule; "ERR" marks each RecordTooLong."""
    buffer = b""
    out: list[bytes | str] = []
    discarding = False
    for chunk in chunks:
        buffer += chunk
        while match := re.search(terminator, buffer, re.S):
            record, buffer = buffer[: match.start()], buffer[match.end() :]
            if discarding:
                discarding = False
            else:
                out.append("ERR" if len(record) > max_length else record)
        if len(buffer) > max_length or (discarding and len(buffer) > keep):
            buffer = buffer[len(buffer) - keep :]
            if not discarding:
                out.append("ERR")
                discarding = True
    return out, buffer


def drain(call: Any, out: list[bytes | str]) -> None:
    while True:
        try:
            records = call()
        except RecordTooLong:
            out.append("ERR")
            continue
        if not records:
            return
        out += records


@settings(derandomize=True, database=None, max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=80).map(lambda b: bytes(b"aaaa\r\n|"[x % 7] for x in b)),
    cuts=st.lists(st.integers(0, 80), max_size=10),
    mode=st.sampled_from(
        [(), ("Literal", b"\r\n"), ("Literal", b"|"), ("InputRegexp", b"\n|\r\n")]
    ),
    max_length=st.integers(1, 12),
    one_by_one=st.booleans(),
)
def test_limits_match_reference(
    data: bytes, cuts: list[int], mode: tuple[Any, ...], max_length: int, one_by_one: bool
) -> None:
    params: dict[str, Any] = {"Encoding": None, "MaxLength": max_length}
    terminator, keep = rb"\r\n?|\n\r?", 0
    if mode:
        params[mode[0]] = mode[1]
        if mode[0] == "Literal":
            terminator, keep = re.escape(mode[1]), min(len(mode[1]) - 1, max_length)
        else:
            terminator, keep = mode[1], max_length
    chunks = split_at(data, cuts)
    line = Line(**params)
    out: list[bytes | str] = []
    for chunk in chunks:
        if one_by_one:
            line.get_one_start([chunk])
            drain(line.get_one, out)
        else:
            try:
                out += line.get([chunk])
            except RecordTooLong:
                out.append("ERR")
    drain(lambda: line.get([]), out)
    expected, leftover = poe_get_limited(chunks, terminator, max_length, keep)
    assert out == expected
    assert line.get_pending() == ([leftover] if leftover else None)


def test_long_lines_and_many_lines_per_read() -> None:
    # Exercises the whole-chunk split and the tail carried between reads.
    lines = [b"x" * (n * 37 % 5000) for n in range(2000)]
    for newline in (b"\n", b"\r", b"\r\n"):
        data = newline.join(lines) + newline
        chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
        expected, _ = poe_get(chunks, rb"\r\n?|\n\r?")
        assert feed_get(Line(Encoding=None), chunks) == expected


# -- Stream --------------------------------------------------------------------------------


def test_stream_passes_octets_through() -> None:
    stream = Stream()
    assert stream.get([b"ab", b"", b"c"]) == [b"abc"]
    assert stream.get([]) == []
    assert stream.put([b"x", "\u00e9", bytearray(b"y")]) == [b"x", b"\xc3\xa9", b"y"]


def test_stream_get_one_and_pending() -> None:
    stream = Stream()
    stream.get_one_start([b"ab", b"cd"])
    assert stream.get_pending() == [b"abcd"]
    twin = stream.clone()
    assert twin.get_pending() is None
    assert stream.get_one() == [b"abcd"]
    assert stream.get_one() == []
    assert stream.get_pending() is None


def test_stream_rejects_parameters() -> None:
    with pytest.raises(ParameterError, match="Stream: unknown parameter 'Foo'"):
        Stream(Foo=1)


def test_filters_share_the_abstract_base() -> None:
    assert isinstance(Line(), Filter)
    assert isinstance(Stream(), Filter)
    with pytest.raises(TypeError):
        Filter()  # type: ignore[abstract]
