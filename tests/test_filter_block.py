"""kernelish.filters.Block and RecordBlock: POE::Filter::Block and ::RecordBlock
(POE-SEMANTICS 9)."""

from __future__ import annotations

import errno
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernelish._params import ParameterError
from kernelish.filters import Block, FilterError, RecordBlock, RecordTooLong
from kernelish.filters._block import DEFAULT_BLOCK_MAX_LENGTH


def encode_u32(block: bytes) -> bytes:
    return struct.pack("!I", len(block)) + block


def decode_u32(buffer: bytearray) -> int | None:
    if len(buffer) < 4:
        return None
    (length,) = struct.unpack_from("!I", buffer)
    del buffer[:4]
    return length


U32 = {"LengthCodec": (encode_u32, decode_u32)}

# (parameters, input chunks (one get() each), records, get_pending()), checked against POE 1.370.
INPUT_CASES: dict[str, tuple[dict[str, Any], list[bytes], list[bytes], list[bytes] | None]] = {
    "length-prefixed": ({}, [b"3\x00abc0\x00", b"2\x00x"], [b"abc", b""], [b"2\x00x"]),
    "prefix split": ({}, [b"1", b"0\x00", b"0123456789"], [b"0123456789"], None),
    "binary payload": ({}, [b"3\x00\x00\n\xff"], [b"\x00\n\xff"], None),
    "block size": ({"BlockSize": 4}, [b"abcdefghij"], [b"abcd", b"efgh"], [b"ij"]),
    "block size across reads": ({"BlockSize": 3}, [b"a", b"bcd", b"ef"], [b"abc", b"def"], None),
    "codec": (U32, [encode_u32(b"xy")[:3], encode_u32(b"xy")[3:]], [b"xy"], None),
    "codec, partial": (U32, [encode_u32(b"xyz")[:5]], [], [b"x"]),  # header consumed, as POE
}


def feed_get(block: Block, chunks: list[bytes]) -> list[bytes]:
    return [record for chunk in chunks for record in block.get([chunk])]


def feed_get_one(block: Block, chunks: list[bytes]) -> list[bytes]:
    records: list[bytes] = []
    for chunk in chunks:
        block.get_one_start([chunk])
        while batch := block.get_one():
            records += batch
    return records


@pytest.mark.parametrize("feed", [feed_get, feed_get_one])
@pytest.mark.parametrize("case", INPUT_CASES.values(), ids=list(INPUT_CASES))
def test_block_input_table(
    case: tuple[dict[str, Any], list[bytes], list[bytes], list[bytes] | None], feed: Any
) -> None:
    params, chunks, records, pending = case
    block = Block(**params)
    assert feed(block, chunks) == records
    assert block.get_pending() == pending


@pytest.mark.parametrize(
    ("params", "records", "chunks"),
    [
        ({}, [b"abc", b"", "\u00e9"], [b"3\x00abc", b"0\x00", b"2\x00\xc3\xa9"]),
        # A short block is not padded; put just joins (POE).
        ({"BlockSize": 4}, [b"ab", b"cde"], [b"abcde"]),
        ({"BlockSize": 4}, [], []),
        (U32, [b"hi"], [b"\x00\x00\x00\x02hi"]),
    ],
)
def test_block_output(params: dict[str, Any], records: list[Any], chunks: list[bytes]) -> None:
    assert Block(**params).put(records) == chunks


@pytest.mark.parametrize("params", [{}, U32], ids=["decimal", "codec"])
@settings(max_examples=100, deadline=None)
@given(
    blocks=st.lists(st.binary(max_size=40), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_random_splits_round_trip(
    params: dict[str, Any], blocks: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(Block(**params).put(blocks))
    points = sorted({min(cut, len(stream)) for cut in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert feed_get(Block(**params), chunks) == blocks
    assert feed_get_one(Block(**params), chunks) == blocks


def test_every_split_point() -> None:
    blocks = [b"first", b"", b"x" * 300, b"\x00\x00"]
    stream = b"".join(Block().put(blocks))
    for cut in range(len(stream) + 1):
        block = Block()
        assert block.get([stream[:cut]]) + block.get([stream[cut:]]) == blocks, cut
        assert block.get_pending() is None


def test_large_block_in_small_reads_is_linear() -> None:
    # 8 MiB in 4 KiB reads: POE's string append-and-cut; here each octet is copied once or
    # twice (a quadratic buffer would take minutes).
    payload = bytes(range(256)) * (8 * 4096)
    stream = Block().put([payload])[0]
    block = Block()
    got: list[bytes] = []
    for start in range(0, len(stream), 4096):
        got += block.get([stream[start : start + 4096]])
    assert got == [payload]


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"xy3\x00abc", b"-1\x00", b"\x00", b" 3\x00abc"])
def test_bogus_prefix_is_an_error_not_a_silent_resync(data: bytes) -> None:
    # POE warns "N strange bytes removed from stream" and reads on from the next digit.
    block = Block()
    with pytest.raises(FilterError, match="bogus length prefix") as info:
        block.get([data])
    assert info.value.errno == errno.EINVAL
    assert block.get_pending() is None


def test_length_over_max_length_is_refused_before_the_block() -> None:
    block = Block(MaxLength=10)
    assert block.get([b"10\x00"]) == []
    with pytest.raises(RecordTooLong, match="frame of 11 octets exceeds the limit of 10"):
        Block(MaxLength=10).get([b"11\x00"])
    with pytest.raises(RecordTooLong, match="more than 2 digits"):
        Block(MaxLength=10).get([b"100"])


def test_block_size_buffer_is_bounded() -> None:
    block = Block(BlockSize=8, MaxBuffer=16)
    assert block.get([b"x" * 16]) == [b"x" * 8] * 2
    block.get_one_start([b"y" * 16])
    with pytest.raises(RecordTooLong, match="exceeds MaxBuffer"):
        block.get_one_start([b"z"])
    assert block.get_pending() is None


def test_error_after_good_blocks_comes_on_the_next_call() -> None:
    block = Block()
    assert block.get([b"1\x00a1\x00bzz"]) == [b"a", b"b"]
    assert block.deferred_error is not None
    with pytest.raises(FilterError, match="bogus"):
        block.get([])


@pytest.mark.parametrize(
    ("decoder", "error", "message"),
    [
        (lambda buf: -1, FilterError, "decoder returned -1, not a length"),
        (lambda buf: "3", FilterError, "decoder returned '3'"),
        (lambda buf: 1 << 30, RecordTooLong, "exceeds MaxLength"),
        (lambda buf: 1 / 0, FilterError, "decoder failed \\(ZeroDivisionError"),
    ],
)
def test_bad_decoder_results(decoder: Any, error: type[Exception], message: str) -> None:
    block = Block(LengthCodec=(encode_u32, decoder))
    with pytest.raises(error, match=message):
        block.get([b"data"])
    assert block.get_pending() is None


def test_codec_that_never_finds_a_header_is_bounded_by_max_buffer() -> None:
    block = Block(LengthCodec=(encode_u32, lambda buf: None), MaxLength=10, MaxBuffer=100)
    assert block.get([b"x" * 100]) == []
    with pytest.raises(RecordTooLong, match="exceeds MaxBuffer"):
        block.get([b"x"])


def test_encoder_must_return_octets() -> None:
    with pytest.raises(TypeError, match="encoder returned str"):
        Block(LengthCodec=(lambda b: "no", decode_u32)).put([b"x"])


# -- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"BlockSize": 0}, "BlockSize must be greater than 0"),
        ({"BlockSize": -4}, "BlockSize must be greater than 0"),
        ({"BlockSize": "4"}, "BlockSize must be int"),
        ({"BlockSize": 4, "LengthCodec": (encode_u32, decode_u32)}, "LengthCodec and BlockSize"),
        ({"BlockSize": 4, "MaxLength": 10}, "MaxLength and BlockSize"),
        ({"BlockSize": 100, "MaxBuffer": 10}, "BlockSize \\(100\\) must not exceed MaxBuffer"),
        ({"LengthCodec": encode_u32}, "LengthCodec must be an \\(encoder, decoder\\) pair"),
        ({"LengthCodec": (encode_u32,)}, "LengthCodec must contain two items"),
        ({"LengthCodec": (1, decode_u32)}, "LengthCodec encoder must be callable"),
        ({"LengthCodec": (encode_u32, 1)}, "LengthCodec decoder must be callable"),
        ({"MaxLength": 100, "MaxBuffer": 103}, "must be at least MaxLength \\+ 4 \\(104\\)"),
        ({"LengthCode": (encode_u32, decode_u32)}, "unknown parameter 'LengthCode'"),
    ],
)
def test_block_parameter_errors(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        Block(**params)


def test_block_defaults_and_snake_case() -> None:
    assert DEFAULT_BLOCK_MAX_LENGTH == 16 * 1024 * 1024
    Block(MaxLength=100, MaxBuffer=104)  # exactly enough
    block = Block(block_size=2, max_buffer=10)
    assert block.get([b"abc"]) == [b"ab"]


def test_block_clone_is_independent() -> None:
    block = Block(BlockSize=3)
    assert block.get([b"ab"]) == []
    twin = block.clone()
    assert twin.get_pending() is None
    assert twin.get([b"xyzw"]) == [b"xyz"]
    assert block.get([b"c"]) == [b"abc"]
    codec = Block(**U32)
    codec.get([b"\x00\x00\x00\x05ab"])
    assert codec.clone().get([encode_u32(b"q")]) == [b"q"]


# -- RecordBlock -----------------------------------------------------------------------------


RECORD_CASES: dict[str, tuple[int, list[list[Any]], list[list[Any]], list[Any] | None]] = {
    "groups of two": (2, [[1, 2, 3, 4, 5]], [[1, 2], [3, 4]], [5]),
    "across calls": (3, [[1], [2, 3], [4]], [[1, 2, 3]], [4]),
    "nothing whole": (4, [["a", "b"]], [], ["a", "b"]),
    "exact": (1, [[None, 0]], [[None], [0]], None),
}


@pytest.mark.parametrize("one_by_one", [False, True])
@pytest.mark.parametrize("case", RECORD_CASES.values(), ids=list(RECORD_CASES))
def test_record_block_input(
    case: tuple[int, list[list[Any]], list[list[Any]], list[Any] | None], one_by_one: bool
) -> None:
    size, inputs, blocks, pending = case
    rb = RecordBlock(BlockSize=size)
    got: list[Any] = []
    for records in inputs:
        if one_by_one:
            rb.get_one_start(records)
            while batch := rb.get_one():
                got += batch
        else:
            got += rb.get(records)
    assert got == blocks
    assert rb.get_pending() == pending


def test_record_block_put_flattens() -> None:
    rb = RecordBlock(BlockSize=2)
    assert rb.put([[1, 2], (3,), []]) == [1, 2, 3]
    assert rb.put_pending() is None


def test_record_block_check_put_holds_partial_blocks() -> None:
    rb = RecordBlock(BlockSize=2, CheckPut=True)
    assert rb.put([[1, 2, 3], [4, 5]]) == [1, 2, 3, 4]
    assert rb.put_pending() == [5]
    assert rb.put([[6]]) == [5, 6]
    assert rb.put_pending() is None
    rb.put([[7]])
    # Turning CheckPut off flushes the held records ahead of the next put (POE).
    assert rb.checkput(False) is False
    assert rb.put([[8]]) == [7, 8]


def test_record_block_accessors() -> None:
    rb = RecordBlock(BlockSize=2)
    assert rb.blocksize() == 2
    assert rb.blocksize(3) == 3
    assert rb.get([1, 2, 3]) == [[1, 2, 3]]
    with pytest.raises(ValueError, match="not a positive int"):
        rb.blocksize(0)
    assert rb.checkput() is False
    assert rb.checkput(True) is True


def test_record_block_put_refuses_non_blocks() -> None:
    with pytest.raises(TypeError, match="a block must be a list or tuple of records \\(got str\\)"):
        RecordBlock(BlockSize=2).put(["ab"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "missing required parameter 'BlockSize'"),
        ({"BlockSize": 0}, "BlockSize must be greater than 0"),
        ({"BlockSize": 2, "Bogus": 1}, "unknown parameter 'Bogus'"),
    ],
)
def test_record_block_parameter_errors(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        RecordBlock(**params)


def test_record_block_clone_is_independent() -> None:
    rb = RecordBlock(BlockSize=2, CheckPut=True)
    rb.get([1])
    rb.put([[1]])
    twin = rb.clone()
    assert twin.get_pending() is None
    assert twin.put_pending() is None
    assert twin.checkput() is True
    assert twin.get([7, 8]) == [[7, 8]]
    assert rb.get([2]) == [[1, 2]]
