"""kernelish.filters.Stackable, Map and Grep: POE::Filter::Stackable, ::Map and ::Grep
(POE-SEMANTICS 9)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernelish._params import ParameterError
from kernelish.filters import (
    Block,
    Filter,
    FilterError,
    Grep,
    Line,
    Map,
    RecordBlock,
    RecordTooLong,
    Reference,
    Stackable,
    Stream,
)


def drain_one(filt: Any) -> list[Any]:
    records: list[Any] = []
    while batch := filt.get_one():
        records += batch
    return records


# -- Map ---------------------------------------------------------------------------------------


def test_map_code_applies_both_ways() -> None:
    upper = Map(Code=str.upper)
    assert upper.get(["a", "b"]) == ["A", "B"]
    assert upper.put(["x"]) == ["X"]


def test_map_get_and_put() -> None:
    codec = Map(Get=json.loads, Put=json.dumps)
    assert codec.get(['{"a": 1}']) == [{"a": 1}]
    assert codec.put([[1]]) == ["[1]"]


def test_map_return_value_is_one_record_even_a_list() -> None:
    assert Map(Code=lambda r: [r, r]).get([1]) == [[1, 1]]
    assert Map(Code=lambda r: None).get([1]) == [None]


def test_map_generator_makes_zero_or_many_records() -> None:
    def twice_unless_b(record: str) -> Iterator[str]:
        if record != "b":
            yield record
            yield record

    dup = Map(Code=twice_unless_b)
    assert dup.get(["a", "b", "c"]) == ["a", "a", "c", "c"]
    assert dup.put(["b", "x"]) == ["x", "x"]


def test_map_dropping_a_record_does_not_end_get_early() -> None:
    # POE 1.370: get(['a','b','c']) with 'b' mapping to () returns ['A'] and keeps 'c'.
    def drop_b(record: str) -> Iterator[str]:
        if record != "b":
            yield record.upper()

    drop = Map(Code=drop_b)
    assert drop.get(["a", "b", "c"]) == ["A", "C"]
    assert drop.get_pending() is None
    drop.get_one_start(["b", "b", "d"])
    assert drop.get_one() == ["D"]
    assert drop.get_one() == []


def test_map_exception_loses_only_its_own_record() -> None:
    def parse(record: str) -> int:
        return int(record)

    ints = Map(Code=parse)
    assert ints.get(["1", "x", "3"]) == [1]
    with pytest.raises(ValueError, match="invalid literal"):
        ints.get([])
    assert ints.get(["4"]) == [3, 4]


def test_map_modify() -> None:
    m = Map(Code=str.upper)
    m.modify(Get=str.lower)
    assert m.get(["AB"]) == ["ab"]
    assert m.put(["ab"]) == ["AB"]
    m.modify(put=str.title)
    assert m.put(["ab cd"]) == ["Ab Cd"]
    m.modify(Code=str.strip)
    assert m.get([" x "]) == ["x"]
    assert m.put([" y "]) == ["y"]


@pytest.mark.parametrize("cls", [Map, Grep])
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "requires a Code or both Get and Put parameters"),
        ({"Get": str.upper}, "requires a Code or both Get and Put"),
        ({"Code": str.upper, "Get": str.lower}, "Code cannot be combined with Get or Put"),
        ({"Code": "upper"}, "Code must be callable \\(got 'upper'\\)"),
        ({"Get": str.upper, "Put": 1}, "Put must be callable"),
        ({"Code": str.upper, "Filter": 1}, "unknown parameter 'Filter'"),
    ],
)
def test_code_parameter_errors(cls: type, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError, match=f"{cls.__name__}: {message}"):
        cls(**params)


@pytest.mark.parametrize("cls", [Map, Grep])
def test_modify_errors_change_nothing(cls: type) -> None:
    filt = cls(Code=bool)
    with pytest.raises(ParameterError, match=f"{cls.__name__}.modify: Get must be callable"):
        filt.modify(Get="no", Put=str)
    with pytest.raises(ParameterError, match="unknown parameter 'Bogus'"):
        filt.modify(Bogus=str)
    with pytest.raises(ParameterError, match="give Code, Get or Put"):
        filt.modify()
    assert filt.put([0, 1]) in ([False, True], [1])


@pytest.mark.parametrize("cls", [Map, Grep])
def test_code_filter_clone_is_independent(cls: type) -> None:
    filt = cls(Get=bool, Put=bool)
    filt.get_one_start([1, 2])
    twin = filt.clone()
    assert twin.get_pending() is None
    assert filt.get_pending() == [1, 2]
    twin.modify(Code=lambda r: r)
    assert filt.get([]) in ([True, True], [1, 2])


# -- Grep --------------------------------------------------------------------------------------


def test_grep_keeps_what_the_predicate_accepts() -> None:
    odd = Grep(Code=lambda n: n % 2)
    assert odd.get([1, 2, 3, 4, 5]) == [1, 3, 5]
    assert odd.put([2, 3]) == [3]
    odd.get_one_start([2, 4, 7, 8])
    assert odd.get_one() == [7]
    assert odd.get_pending() == [8]


def test_grep_get_and_put() -> None:
    grep = Grep(Get=lambda r: r.startswith("#") is False, Put=bool)
    assert grep.get(["# comment", "data", "#x"]) == ["data"]
    assert grep.put(["", "y"]) == ["y"]


# -- Stackable ---------------------------------------------------------------------------------


def json_lines() -> Stackable:
    return Stackable(Filters=[Line(Literal="\n"), Map(Get=json.loads, Put=lambda r: json.dumps(r))])


STACKS: dict[str, tuple[Callable[[], Stackable], list[bytes], list[Any], list[Any] | None]] = {
    "line + map": (
        lambda: Stackable(Filters=[Line(Literal="\n"), Map(Code=str.upper)]),
        [b"ab\ncd\nef"],
        ["AB", "CD"],
        [b"ef"],
    ),
    "json lines": (json_lines, [b'{"a":1}\n[2', b"]\n3"], [{"a": 1}, [2]], [b"3"]),
    "block + line": (
        lambda: Stackable(Filters=[Block(), Line(Literal="\n", Encoding=None)]),
        [b"5\x00ab\ncd3\x00ef\n4\x00gh"],
        [b"ab", b"cdef"],
        [b"4\x00gh"],
    ),
    "line + recordblock + map": (
        lambda: Stackable(
            Filters=[Line(Literal="\n"), RecordBlock(BlockSize=2), Map(Code=lambda b: "+".join(b))]
        ),
        [b"a\nb\nc\n"],
        ["a+b"],
        [b"c\n"],
    ),
    "line + grep": (
        lambda: Stackable(Filters=[Line(Literal="\n"), Grep(Code=bool)]),
        [b"a\n\n\nb\n"],
        ["a", "b"],
        None,
    ),
    "reference over block": (
        lambda: Stackable(Filters=[Block(BlockSize=4), Reference(Serializer=json)]),
        [b"1\x002", b"2\x00[]1\x00"],
        [2, []],
        [b"1", b"\x00"],  # Reference holds "1" (encoded down by Block), Block the NUL
    ),
}


@pytest.mark.parametrize("one_by_one", [False, True])
@pytest.mark.parametrize("case", STACKS.values(), ids=list(STACKS))
def test_stack_input_table(
    case: tuple[Callable[[], Stackable], list[bytes], list[Any], list[Any] | None],
    one_by_one: bool,
) -> None:
    make, chunks, records, pending = case
    stack = make()
    got: list[Any] = []
    for chunk in chunks:
        if one_by_one:
            stack.get_one_start([chunk])
            got += drain_one(stack)
        else:
            got += stack.get([chunk])
    assert got == records
    assert stack.get_pending() == pending


def test_stack_put_goes_down_in_reverse() -> None:
    stack = json_lines()
    assert stack.put([{"a": 1}, [2]]) == [b'{"a": 1}\n', b"[2]\n"]
    assert Stackable(Filters=[Line(), Grep(Code=bool)]).put(["", ""]) == []


@settings(max_examples=100, deadline=None)
@given(
    objects=st.lists(st.dictionaries(st.text(max_size=5), st.integers()), max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=8),
)
def test_stack_get_and_get_one_agree_at_any_split(objects: list[Any], cuts: list[int]) -> None:
    stream = b"".join(json_lines().put(objects))
    points = sorted({min(cut, len(stream)) for cut in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    whole = json_lines()
    assert [r for c in chunks for r in whole.get([c])] == objects
    single = json_lines()
    got: list[Any] = []
    for chunk in chunks:
        single.get_one_start([chunk])
        got += drain_one(single)
    assert got == objects


def test_get_pending_keeps_every_filters_data() -> None:
    # POE 1.370 returned [] here: Line's "ef" was put into the Map and dropped.
    stack = Stackable(Filters=[Line(Literal="\n"), RecordBlock(BlockSize=3)])
    assert stack.get([b"a\nb\nc\nd\ne\nf"]) == [["a", "b", "c"]]
    # RecordBlock holds "d", "e" (earlier); Line holds "f" (later).
    assert stack.get_pending() == [b"d\n", b"e\n", b"f"]
    assert stack.get_pending() == [b"d\n", b"e\n", b"f"]  # and nothing changed


def test_get_pending_round_trips_into_a_fresh_stack() -> None:
    stack = Stackable(Filters=[Block(), Line(Literal="\n", Encoding=None)])
    assert stack.get([b"5\x00ab\ncd3\x00ef\n4\x00gh"]) == [b"ab", b"cdef"]
    stack.get_one_start([b"ij3\x00k\nl2\x00m\n"])
    assert stack.get_one() == [b"ghijk"]
    # The rest is spread over both filters: Line holds "l", Block "2\0m\n".
    pending = stack.get_pending()
    assert pending == [b"1\x00l", b"2\x00m\n"]
    fresh = Stackable(Filters=[Block(), Line(Literal="\n", Encoding=None)])
    assert fresh.get([*pending, b"1\x00\n"]) == stack.get([b"1\x00\n"]) == [b"lm", b""]


def test_shift_gives_the_removed_filters_octets_to_the_next() -> None:
    # POE 1.370 put Line's pending "efg" into the Block and dropped it: get(["hij"]) was "dhi".
    stack = Stackable(Filters=[Line(Literal="\n", Encoding=None), Block(BlockSize=3)])
    assert stack.get([b"abcd\nefg"]) == [b"abc"]
    removed = stack.shift()
    assert isinstance(removed, Line)
    assert stack.get([b"hij"]) == [b"def", b"ghi"]
    assert stack.get_pending() == [b"j"]


def test_pop_makes_the_removed_filters_data_the_next_records() -> None:
    stack = Stackable(Filters=[Line(Literal="\n"), RecordBlock(BlockSize=3)])
    assert stack.get([b"a\nb\nc\nd\ne\n"]) == [["a", "b", "c"]]
    removed = stack.pop()
    assert isinstance(removed, RecordBlock)
    assert stack.get([b"f\n"]) == ["d", "e", "f"]


def test_pop_encodes_records_the_stack_had_not_returned() -> None:
    stack = Stackable(Filters=[Line(Literal="\n"), RecordBlock(BlockSize=2), Map(Code=len)])
    stack.get_one_start([b"a\nb\nc\nd\ne\n"])
    assert stack.get_one() == [2]
    stack.pop()  # the Map
    stack.pop()  # the RecordBlock: its pending "e" and the waiting block [c, d] come back
    assert stack.get([]) == ["c", "d", "e"]


def test_push_and_unshift() -> None:
    stack = Stackable()
    stack.push(Line(Literal="\n"))
    stack.push(Map(Code=str.upper), Grep(Code=lambda r: r != "X"))
    stack.unshift(Block())
    assert stack.filter_types() == [Block, Line, Map, Grep]
    assert [type(f) for f in stack.filters()] == [Block, Line, Map, Grep]
    assert stack.get([b"4\x00a\nx\n2\x00b\n"]) == ["A", "B"]
    assert stack.put(["q", "X"]) == [b"2\x00Q\n"]
    stack.filters().clear()  # a copy
    assert len(stack.filters()) == 4


def test_push_onto_records_waiting_after_a_pop() -> None:
    stack = Stackable(Filters=[Line(Literal="\n"), RecordBlock(BlockSize=5)])
    stack.get([b"a\nb\n"])
    stack.pop()  # "a", "b" are now the stack's next records...
    stack.push(Map(Code=str.upper))  # ...and go through the new top filter
    assert stack.get([b"c\n"]) == ["A", "B", "C"]


def test_empty_stack_passes_records_through() -> None:
    # POE's empty stack dies in get_one_start; an empty pipeline is the identity here.
    stack = Stackable()
    assert stack.put(["a", 1]) == ["a", 1]
    assert stack.get([b"x", b"y"]) == [b"x", b"y"]
    stack.get_one_start([b"z"])
    stack.unshift(Line(Literal="\n"))  # raw input waiting in the empty stack is parsed
    assert stack.get([b"\n"]) == ["z"]


def test_stack_errors() -> None:
    with pytest.raises(ParameterError, match="Stackable: Filters must be a list of filters"):
        Stackable(Filters=Line())
    with pytest.raises(ParameterError, match=r"Filters \[1\] is not a filter"):
        Stackable(Filters=[Line(), "Map"])
    stack = Stackable(Filters=[Line()])
    with pytest.raises(TypeError, match=r"Stackable\.push: argument 0 is not a filter"):
        stack.push(None)
    with pytest.raises(TypeError, match=r"Stackable\.unshift: argument 1 is not a filter"):
        stack.unshift(Line(), object())
    assert stack.filter_types() == [Line]
    stack.shift()
    with pytest.raises(IndexError, match=r"Stackable\.shift: the stack is empty"):
        stack.shift()
    with pytest.raises(IndexError, match=r"Stackable\.pop: the stack is empty"):
        stack.pop()


def test_a_duck_typed_filter_can_be_stacked() -> None:
    class Reverse:
        def __init__(self) -> None:
            self.buffer: list[Any] = []

        def get_one_start(self, records: list[Any]) -> None:
            self.buffer.extend(records)

        def get_one(self) -> list[Any]:
            return [self.buffer.pop(0)[::-1]] if self.buffer else []

        def get(self, records: list[Any]) -> list[Any]:
            self.get_one_start(records)
            return drain_one(self)

        def put(self, records: list[Any]) -> list[Any]:
            return [r[::-1] for r in records]

        def get_pending(self) -> list[Any] | None:
            return list(self.buffer) or None

        def clone(self) -> Reverse:
            return Reverse()

    stack = Stackable(Filters=[Line(Literal="\n"), Reverse()])
    assert stack.get([b"abc\n"]) == ["cba"]
    assert stack.put(["cba"]) == [b"abc\n"]


def test_stack_error_behind_records_is_reported_next_call() -> None:
    stack = Stackable(Filters=[Line(Literal="\n", MaxLength=10), Map(Code=str.upper)])
    assert stack.get([b"ok\n" + b"x" * 20 + b"\nlater\n"]) == ["OK"]
    assert stack.deferred_error is not None
    with pytest.raises(RecordTooLong):
        stack.get([])
    assert stack.get([]) == ["LATER"]


def test_stack_map_error_is_reported_next_call() -> None:
    stack = json_lines()
    assert stack.get([b"1\n{bad\n2\n"]) == [1]
    with pytest.raises(json.JSONDecodeError):
        stack.get([])
    assert stack.get([]) == [2]


def test_stack_clone_is_deep_and_empty() -> None:
    stack = Stackable(Filters=[Line(Literal="\n"), RecordBlock(BlockSize=2)])
    stack.get([b"a\nb\nc\nd"])
    twin = stack.clone()
    assert twin.get_pending() is None
    assert twin.filter_types() == stack.filter_types()
    assert all(a is not b for a, b in zip(twin.filters(), stack.filters(), strict=True))
    assert twin.get([b"x\ny\n"]) == [["x", "y"]]
    assert stack.get_pending() == [b"c\n", b"d"]
    assert stack.get([b"\n"]) == [["c", "d"]]


def test_every_new_filter_is_a_filter() -> None:
    for cls in (Block, Grep, Map, RecordBlock, Reference, Stackable, Stream):
        assert issubclass(cls, Filter)
    assert issubclass(FilterError, ValueError)


def test_input_given_with_a_waiting_error_is_kept() -> None:
    def explode(record: str) -> str:
        if record == "bad":
            raise ValueError("bad record")
        return record.upper()

    stack = Stackable(Filters=[Line(Literal="\n"), Map(Code=explode), RecordBlock(BlockSize=5)])
    assert stack.get([b"a\nb\n"]) == []
    stack.pop()  # "A", "B" become the stack's next records
    assert stack.get([b"bad\nc\n"]) == ["A", "B"]  # the stack's own error waits
    with pytest.raises(ValueError, match="bad record"):
        stack.get([b"d\n"])  # raised, and "d" kept
    assert stack.get([]) == ["C", "D"]
