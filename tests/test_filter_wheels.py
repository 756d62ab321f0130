"""The new filters under a real ReadWrite wheel, over a real socketpair: records in and out,
split frames, and bad input reported as ErrorEvent without waiting for more input."""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from kernelish import ARG0, ARG1, HEAP, HandlerArgs, poe_kernel
from kernelish.filters import Filter, Line, Map, Reference, Stackable
from kernelish.wheels import ReadWrite

from ._wheels import run_until, session


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(the wheel's end, the peer's end) of a socketpair."""
    mine, peer = socket.socketpair()
    peer.setblocking(False)
    yield mine, peer
    mine.close()
    peer.close()


def echo_session(
    log: list[Any], handle: socket.socket, filt: Filter[Any], *, echo: bool = True
) -> Any:
    """A session whose ReadWrite answers each record with {"echo": record}."""

    def start(_: HandlerArgs) -> None:
        _[HEAP]["wheel"] = ReadWrite(
            Handle=handle, Filter=filt, InputEvent="input", ErrorEvent="error"
        )

    def got(_: HandlerArgs) -> None:
        log.append(("input", _[ARG0]))
        if echo:
            _[HEAP]["wheel"].put({"echo": _[ARG0]})

    def error(_: HandlerArgs) -> None:
        log.append(("error", *_.args))
        del _[HEAP]["wheel"]

    return session(_start=start, input=got, error=error)


class Peer:
    """The other end: sends octets, collects and decodes replies as the loop runs."""

    def __init__(self, sock: socket.socket, filt: Filter[Any]) -> None:
        self.sock = sock
        self.filter = filt
        self.records: list[Any] = []

    def received(self, count: int) -> bool:
        try:
            while data := self.sock.recv(65536):
                self.records += self.filter.get([data])
        except BlockingIOError:
            pass
        return len(self.records) >= count


def test_reference_round_trips_through_readwrite_in_tiny_pieces(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    mine, theirs = pair
    log: list[Any] = []
    s = echo_session(log, mine, Reference())
    peer = Peer(theirs, Reference())
    messages = [{"id": n, "sql": "SELECT ?", "args": [n, "x" * n]} for n in range(50)]
    stream = b"".join(Reference().put(messages))
    for start in range(0, len(stream), 7):
        theirs.send(stream[start : start + 7])
        if start % 700 == 0:
            poe_kernel.run_one_timeslice()
    run_until(lambda: peer.received(len(messages)), what="50 echoes")
    assert [r for kind, r in log] == messages
    assert peer.records == [{"echo": m} for m in messages]
    del s.heap["wheel"]


def test_reference_bogus_frame_after_good_ones_is_an_error_event(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    mine, theirs = pair
    log: list[Any] = []
    s = echo_session(log, mine, Reference(Serializer=json))
    wid = s.heap["wheel"].ID
    theirs.send(b"1\x001" + b"1\x002" + b"GET / HTTP/1.0\r\n")  # then silence
    run_until(lambda: any(e[0] == "error" for e in log), what="ErrorEvent")
    assert log[:2] == [("input", 1), ("input", 2)]
    (error,) = log[2:]
    assert error[:3] == ("error", "read", errno.EINVAL)
    assert "bogus length prefix" in error[3]
    assert error[4] == wid


def test_reference_length_over_max_buffer_is_an_error_event(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    mine, theirs = pair
    log: list[Any] = []
    s = echo_session(log, mine, Reference(Serializer=json, MaxBuffer=1 << 20))
    wid = s.heap["wheel"].ID
    theirs.send(b"999999999\0")
    run_until(lambda: log, what="ErrorEvent")
    assert log == [("error", "read", errno.EMSGSIZE, "record too long", wid)]


def test_json_lines_stack_through_readwrite(pair: tuple[socket.socket, socket.socket]) -> None:
    def json_lines() -> Stackable:
        return Stackable(
            Filters=[Line(Literal="\n"), Map(Get=json.loads, Put=lambda r: json.dumps(r))]
        )

    mine, theirs = pair
    log: list[Any] = []
    s = echo_session(log, mine, json_lines())
    peer = Peer(theirs, json_lines())
    theirs.send(b'{"a": 1}\n[1, 2')
    theirs.send(b']\n"x"\n')
    run_until(lambda: peer.received(3), what="3 echoes")
    assert peer.records == [{"echo": {"a": 1}}, {"echo": [1, 2]}, {"echo": "x"}]
    del s.heap["wheel"]


def test_overlong_line_behind_good_ones_is_reported_without_more_input(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    # Line holds the error back behind the records before it; the wheel must ask again at
    # once (it used to wait for the peer's next read, forever if the peer waits too).
    mine, theirs = pair
    for filt in (
        Line(MaxLength=100),
        Stackable(Filters=[Line(MaxLength=100), Map(Code=str.upper)]),
    ):
        log: list[Any] = []
        s = echo_session(log, mine, filt, echo=False)
        wid = s.heap["wheel"].ID
        theirs.send(b"one\r\ntwo\r\n" + b"x" * 500 + b"\r\n")
        run_until(lambda log=log: any(e[0] == "error" for e in log), what="ErrorEvent")
        records = [r for kind, r, *_ in log if kind == "input"]
        assert records in (["one", "two"], ["ONE", "TWO"])
        assert log[-1] == ("error", "read", errno.EMSGSIZE, "record too long", wid)
        s.heap.pop("wheel", None)


def test_switching_from_line_to_reference_mid_read(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    # A handshake line, then Reference frames, all in one read: the handler switches the
    # filter and the frames are parsed by Reference (POE's get_one_start/get_one contract).
    mine, theirs = pair
    got: list[Any] = []

    def start(_: HandlerArgs) -> None:
        _[HEAP]["wheel"] = ReadWrite(Handle=mine, InputEvent="input", ErrorEvent="error")

    def input_(_: HandlerArgs) -> None:
        got.append(_[ARG0])
        if _[ARG0] == "HELLO":
            _[HEAP]["wheel"].set_filter(Reference(Serializer=json))
            assert _[ARG1] == _[HEAP]["wheel"].ID

    s = session(_start=start, input=input_, error=lambda _: got.append("error"))
    theirs.send(b"HELLO\r\n" + b"".join(Reference(Serializer=json).put([{"n": 1}, [2]])))
    run_until(lambda: len(got) >= 3, what="the handshake and two frames")
    assert got == ["HELLO", {"n": 1}, [2]]
    del s.heap["wheel"]
