"""FollowTail: where it starts, what it delivers, its parameters, Handle
mode, filters and its lifetime.  Rotation and truncation are in
test_followtail_rotation.py.

The start positions were taken from POE 1.370 running the same steps
(``perl`` with POE::Wheel::FollowTail, PollInterval 0.1)."""

from __future__ import annotations

import errno
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from kernelish import HEAP, HandlerArgs, poe_kernel
from kernelish._params import ParameterError
from kernelish.filters import Line
from kernelish.wheels import FollowTail

from ._tailing import Tail, construct, fds_under
from ._wheels import run_until, session

CONTENT = b"one\ntwo\nthr"
APPENDED = b"ee\nfour\n"


@pytest.mark.parametrize(
    ("params", "at_start", "after_append"),
    [
        # No Seek: 4,096 back (here: 0), complete records thrown away; the
        # partial "thr" stays in the filter and is completed.
        ({}, [], ["three", "four"]),
        ({"Seek": 0}, ["one", "two"], ["three", "four"]),
        ({"Seek": 5}, ["wo"], ["three", "four"]),
        ({"Seek": -5}, ["o"], ["three", "four"]),
        ({"Seek": 100}, [], ["ee", "four"]),
        ({"SeekBack": 5}, ["o"], ["three", "four"]),
        ({"SeekBack": 100}, ["one", "two"], ["three", "four"]),
        ({"SeekBack": 0}, [], ["ee", "four"]),
        ({"SeekBack": -5}, ["wo"], ["three", "four"]),
        ({"seek_back": 5}, ["o"], ["three", "four"]),
    ],
)
def test_the_start_is_poes(
    tmp_path: Path, params: dict[str, int], at_start: list[str], after_append: list[str]
) -> None:
    log = tmp_path / "log"
    log.write_bytes(CONTENT)
    tail = Tail(Filename=str(log), **params)
    tail.idle_polls(1)
    assert tail.lines == at_start
    with log.open("ab") as f:
        f.write(APPENDED)
    tail.wait_lines(at_start + after_append)
    tail.idle_polls(2)
    assert tail.lines == at_start + after_append
    assert tail.count("reset") == 0
    assert tail.errors() == []


def test_without_seek_a_big_file_is_not_replayed(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"".join(b"old line %05d\n" % i for i in range(5000)))  # 75 kB
    tail = Tail(Filename=log)  # a Path works too
    tail.idle_polls(2)
    assert tail.lines == []
    with log.open("ab") as f:
        f.write(b"new\n")
    tail.wait_lines(["new"])


def test_a_relative_filename_survives_a_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made absolute at construction: a daemon that chdirs to / after
    making the wheel (the Daemon does when it detaches) follows the same file."""
    monkeypatch.chdir(tmp_path)
    Path("app.log").write_text("")
    tail = Tail(Filename="app.log")
    tail.idle_polls(1)
    monkeypatch.chdir("/")
    with (tmp_path / "app.log").open("a") as f:
        f.write("still here\n")
    tail.wait_lines(["still here"])
    assert tail.errors() == []


def test_every_poll_drains_all_complete_records(tmp_path: Path) -> None:
    """30,000 lines (1.4 MB: past the 64 kB block and the 1 MiB pass
    budget) appended at once all come in one poll (POE reads one block
    per dispatch), with no IdleEvent in between."""
    log = tmp_path / "log"
    log.write_bytes(b"")
    lines = [f"line {i:06d} {'x' * 30}" for i in range(30_000)]
    seen_at_idle: list[int] = []
    times: list[float] = []

    def on_idle(_: HandlerArgs) -> None:
        seen_at_idle.append(len(tail.lines))
        if len(seen_at_idle) == 1:
            with log.open("a") as f:
                f.write("".join(line + "\n" for line in lines))

    def on_input(_: HandlerArgs) -> None:
        if len(times) < 2:
            times.append(time.monotonic())
        else:
            times[1] = time.monotonic()

    tail = Tail(Filename=str(log), on_idle=on_idle, on_input=on_input, PollInterval=1.0)
    tail.wait_lines(lines)
    assert seen_at_idle == [0]  # no poll in between came back with nothing
    assert times[1] - times[0] < 1.0  # one poll (POE-style, one block a poll: 22)


def test_a_backlog_does_not_stall_other_sessions(tmp_path: Path) -> None:
    """Seek=0 on 4 MB: the wheel reads 1 MiB per dispatch pass and lets a
    ticking session run between passes."""
    log = tmp_path / "log"
    log.write_bytes(b"".join(b"%063d\n" % i for i in range(65_536)))
    ticks_during: list[int] = []

    def tick(_: HandlerArgs) -> None:
        ticks_during.append(len(tail.lines))
        if len(tail.lines) < 65_536:
            _.kernel.yield_("tick")

    session(_start=lambda _: _.kernel.yield_("tick"), tick=tick)
    tail = Tail(Filename=str(log), Seek=0)
    tail.wait_lines([f"{i:063d}" for i in range(65_536)])
    partial = [n for n in ticks_during if 0 < n < 65_536]
    assert len(partial) >= 3, ticks_during[:10]


def test_tell_resumes_where_the_last_complete_record_ended(tmp_path: Path) -> None:
    """tell() counts no partial record: saved and given back as Seek, it
    loses and repeats nothing (POE's tell() is the read offset, so the
    restarted wheel would deliver the partial record's tail as a record)."""
    log = tmp_path / "log"
    log.write_bytes(b"one\ntwo\nhalf of thr")
    tail = Tail(Filename=str(log), Seek=0)
    tail.wait_lines(["one", "two"])
    position = tail.wheel.tell()
    assert position == len(b"one\ntwo\n")
    tail.drop()
    with log.open("ab") as f:
        f.write(b"ee\nfour\n")
    again = Tail(Filename=str(log), Seek=position)
    again.wait_lines(["half of three", "four"])
    assert again.wheel.tell() == log.stat().st_size


def test_tell_with_no_file_and_on_a_pipe_is_none(tmp_path: Path) -> None:
    tail = Tail(Filename=str(tmp_path / "absent"))
    tail.idle_polls(1)
    assert tail.wheel.tell() is None
    r, w = os.pipe()
    try:
        piped = Tail(Handle=r)
        assert piped.wheel.tell() is None
    finally:
        os.close(w)
        os.close(r)


# -- Handle mode ------------------------------------------------------------------------


def test_a_pipe_is_read_when_readable_and_its_end_is_an_error_event() -> None:
    """POE gives a pipe's end only an IdleEvent (and a socket's an
    ErrorEvent); kernelish gives ReadWrite's ``('read', 0, '')`` for both,
    and the session ends: no busy loop, no watcher left."""
    r, w = os.pipe()
    tail = Tail(Handle=os.fdopen(r, "rb", buffering=0))
    os.write(w, b"a\nb\r\nc")
    tail.wait_lines(["a", "b"])
    os.write(w, b"\n")
    tail.wait_lines(["a", "b", "c"])
    os.close(w)
    poe_kernel.run()  # returns: nothing of the wheel keeps the session
    assert tail.errors() == [("read", 0, "")]
    assert tail.count("idle") == 0
    tail.drop()
    # The file object was the wheel's only: closed with it, as in Perl.
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(r)


def test_a_socket_handle() -> None:
    left, right = socket.socketpair()
    tail = Tail(Handle=left)
    right.sendall(b"over a socket\n")
    tail.wait_lines(["over a socket"])
    right.close()
    poe_kernel.run()
    assert tail.errors() == [("read", 0, "")]
    tail.drop()
    left.close()


def test_a_regular_file_handle_is_polled_and_truncation_is_a_reset(tmp_path: Path) -> None:
    """POE 1.370 resets a Handle too when the file shrinks (its code, not
    its documentation); the handle's own offset is left alone."""
    log = tmp_path / "log"
    log.write_bytes(b"a\n")
    with log.open("rb") as handle:
        tail = Tail(Handle=handle)
        with log.open("ab") as f:
            f.write(b"b\n")
        tail.wait_lines(["b"])
        log.write_bytes(b"")  # truncated
        tail.wait_for(lambda: tail.count("reset") == 1, "a reset")
        with log.open("ab") as f:
            f.write(b"c\n")
        tail.wait_lines(["b", "c"])
        assert handle.tell() == 0
        tail.drop()
        assert not handle.closed  # the with block still holds it


def test_seek_on_a_pipe_is_refused() -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(ParameterError, match="SeekBack needs a regular file") as info:
            construct(Handle=r, SeekBack=10)
        assert info.value.params == ("SeekBack",)
    finally:
        os.close(r)
        os.close(w)


def test_a_fifo_by_name_is_read_when_readable_and_survives_its_writers(tmp_path: Path) -> None:
    """POE opens a FIFO read-write so that writers may come and go (and
    then polls it: on 1.370 nothing is delivered); here it is selected."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    tail = Tail(Filename=str(fifo))
    for text in ("first", "second"):
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, text.encode() + b"\n")
        os.close(fd)
        tail.wait_for(lambda text=text: text in tail.lines, f"{text!r} through the FIFO")
    assert tail.lines == ["first", "second"]
    assert tail.errors() == []
    assert fds_under(tmp_path) == 1
    tail.drop()
    assert fds_under(tmp_path) == 0


# -- filters, handlers and events ------------------------------------------------------------


def test_an_overlong_record_is_reported_and_the_following_goes_on(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"")
    tail = Tail(Filename=str(log), Filter=Line(MaxLength=100))
    with log.open("ab") as f:
        f.write(b"ok1\n" + b"x" * 500 + b"\nok2\n")
    tail.wait_lines(["ok1", "ok2"])
    assert tail.errors() == [("read", errno.EMSGSIZE, "record too long")]
    with log.open("ab") as f:
        f.write(b"ok3\n")
    tail.wait_lines(["ok1", "ok2", "ok3"])


def test_a_bytes_filter_and_a_custom_driver(tmp_path: Path) -> None:
    from kernelish.drivers import SysRW

    class Counting(SysRW):
        reads = 0

        def get(self, handle: Any) -> list[bytes] | None:
            Counting.reads += 1
            return super().get(handle)

    log = tmp_path / "log"
    log.write_bytes(b"")
    tail = Tail(Filename=str(log), Filter=Line(Encoding=None), Driver=Counting(BlockSize=4))
    with log.open("ab") as f:
        f.write(b"\xff\xfe binary\nsecond line\n")
    tail.wait_lines([b"\xff\xfe binary", b"second line"])
    assert Counting.reads >= 6  # 4 octets a read


def test_a_dying_handler_loses_no_records(tmp_path: Path) -> None:
    """An exception in InputEvent's handler is POE's DIE; handled, the
    records after the failing one still come, in order, and polling goes on."""
    log = tmp_path / "log"
    log.write_bytes(b"")
    deaths: list[str] = []

    def on_input(_: HandlerArgs) -> None:
        if _.args[0] == "2":
            raise RuntimeError("handler failed on 2")

    def on_die(_: HandlerArgs) -> None:
        deaths.append(str(_.args[1]["error_str"]))
        _.kernel.sig_handled()

    tail = Tail(
        Filename=str(log),
        on_input=on_input,
        on_start=lambda _: _.kernel.sig("DIE", "die"),
        states={"die": on_die},
    )
    with log.open("ab") as f:
        f.write(b"1\n2\n3\n4\n")
    tail.wait_lines(["1", "2", "3", "4"])
    assert len(deaths) == 1
    assert "handler failed on 2" in deaths[0]
    with log.open("ab") as f:
        f.write(b"5\n")
    tail.wait_lines(["1", "2", "3", "4", "5"])


def test_event_renames_events_and_refuses_bad_names(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"")
    renamed: list[str] = []
    tail = Tail(Filename=str(log), states={"input2": lambda _: renamed.append(_.args[0])})
    tail.idle_polls(1)
    tail.wheel.event(InputEvent="input2", IdleEvent=None)
    idles = tail.count("idle")
    with log.open("ab") as f:
        f.write(b"renamed\n")
    run_until(lambda: renamed, what="the renamed InputEvent")
    assert renamed == ["renamed"]
    assert tail.lines == []
    assert tail.count("idle") == idles
    with pytest.raises(ParameterError, match="unknown event parameter 'FlushedEvent'"):
        tail.wheel.event(FlushedEvent="x")
    with pytest.raises(ParameterError, match="InputEvent requires an event name"):
        tail.wheel.event(input_event=None)


# -- parameters and lifetime --------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message", "names"),
    [
        ({}, "a Handle or Filename parameter, but not both", ()),
        ({"Filename": "x", "Handle": 0}, "a Handle or Filename parameter, but not both", ()),
        ({"Filename": "x", "Seek": 1, "SeekBack": 1}, "can't have Seek and SeekBack", ()),
        ({"Filename": "x", "PollInterval": 0}, "PollInterval must be greater than 0", None),
        ({"Filename": "x", "Seek": "10"}, "Seek must be int", None),
        ({"Filename": 12.5}, "Filename must be a path", None),
        ({"Filename": ""}, "Filename must be a non-empty path", None),
        ({"Filename": "x", "Flter": Line()}, "unknown parameter 'Flter'", ("Flter",)),
        ({"Handle": object()}, "Handle must be a file", None),
    ],
)
def test_bad_parameters_are_refused_by_name(
    params: dict[str, Any], message: str, names: tuple[str, ...] | None
) -> None:
    with pytest.raises(ParameterError, match=message) as info:
        construct(**params)
    if names is not None:
        assert info.value.params == names


def test_input_event_is_required(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="missing required parameter 'InputEvent'"):
        FollowTail(Filename=str(tmp_path / "x"))


def test_a_directory_or_a_device_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="is a directory") as info:
        construct(Filename=str(tmp_path))
    assert info.value.params == ("Filename",)
    with pytest.raises(ParameterError, match="not a regular file or a FIFO"):
        construct(Filename="/dev/null")
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        with pytest.raises(ParameterError, match="does not tail directories"):
            construct(Handle=fd)
    finally:
        os.close(fd)
    with pytest.raises(ParameterError, match="Handle is not an open file"):
        construct(Handle=fd)


def test_dropping_the_wheel_closes_its_files_and_ends_its_session(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"a\n")
    stopped: list[bool] = []

    def start(_: HandlerArgs) -> None:
        _[HEAP]["wheel"] = FollowTail(Filename=str(log), InputEvent="input", PollInterval=0.01)
        _.kernel.delay("drop", 0.05)

    def drop(_: HandlerArgs) -> None:
        assert fds_under(tmp_path) == 1
        del _[HEAP]["wheel"]  # its poll timer and its file go with it

    session(_start=start, input=lambda _: None, drop=drop, _stop=lambda _: stopped.append(True))
    poe_kernel.run()
    assert stopped == [True]
    assert fds_under(tmp_path) == 0


def test_the_wheel_keeps_its_session_alive_while_it_polls(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"")
    tail = Tail(Filename=str(log))
    tail.idle_polls(3)
    assert tail.session.alive
    run_until(lambda: tail.count("idle") >= 5, what="more polls")
