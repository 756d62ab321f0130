"""ReadWrite over real sockets: echo, flow control, EOF, errors, limits
(POE-SEMANTICS 7.2)."""

from __future__ import annotations

import errno
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from kernelish import ARG0, ARG1, HEAP, HandlerArgs, poe_kernel
from kernelish._params import ParameterError
from kernelish.filters import Line, Stream
from kernelish.wheels import ReadWrite, SocketFactory

from ._wheels import run_until, session


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected TCP pair on 127.0.0.1: (for the wheel, the plain peer)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        peer = socket.create_connection(listener.getsockname())
        mine, _ = listener.accept()
    yield mine, peer
    mine.close()
    peer.close()


def wheel_session(log: list[Any], **params: Any) -> Any:
    """A session with one ReadWrite in heap['wheel'] recording its events."""

    def start(_: HandlerArgs) -> None:
        _[HEAP]["wheel"] = ReadWrite(
            InputEvent="input", ErrorEvent="error", FlushedEvent="flushed", **params
        )

    def record(name: str) -> Any:
        return lambda _: log.append((name, *_.args))

    return session(
        _start=start,
        input=record("input"),
        error=record("error"),
        flushed=record("flushed"),
        high=record("high"),
        low=record("low"),
    )


def test_line_echo_server_and_client_in_one_process() -> None:
    got: list[str] = []

    def server_start(_: HandlerArgs) -> None:
        _[HEAP]["listener"] = SocketFactory(
            BindAddress="127.0.0.1", SuccessEvent="accepted", FailureEvent="failed"
        )
        _[HEAP]["clients"] = {}
        _.kernel.alias_set("server")

    def accepted(_: HandlerArgs) -> None:
        wheel = ReadWrite(Handle=_[ARG0], InputEvent="line", ErrorEvent="gone")
        _[HEAP]["clients"][wheel.ID] = wheel

    def line(_: HandlerArgs) -> None:
        _[HEAP]["clients"][_[ARG1]].put("echo:" + _[ARG0])

    def gone(_: HandlerArgs) -> None:
        del _[HEAP]["clients"][_.args[3]]
        del _[HEAP]["listener"]  # one client: the server ends with it
        _.kernel.alias_remove("server")

    server = session(
        _start=server_start, accepted=accepted, line=line, gone=gone, failed=lambda _: None
    )
    port = server.heap["listener"].getsockname()[1]

    def client_start(_: HandlerArgs) -> None:
        _[HEAP]["connector"] = SocketFactory(
            RemoteAddress="127.0.0.1", RemotePort=port, SuccessEvent="up", FailureEvent="down"
        )

    def up(_: HandlerArgs) -> None:
        del _[HEAP]["connector"]
        _[HEAP]["wheel"] = ReadWrite(Handle=_[ARG0], InputEvent="reply")
        _[HEAP]["wheel"].put("one", "two", "three")

    def reply(_: HandlerArgs) -> None:
        got.append(_[ARG0])
        if len(got) == 3:
            del _[HEAP]["wheel"]

    session(_start=client_start, up=up, reply=reply, down=lambda _: None)
    poe_kernel.run()  # both sessions end by themselves
    assert got == ["echo:one", "echo:two", "echo:three"]
    assert not poe_kernel.introspection.handle_count()


def test_eof_is_read_error_zero_and_the_write_side_still_works(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    mine, peer = pair
    log: list[Any] = []
    s = wheel_session(log, Handle=mine)
    wid = s.heap["wheel"].ID
    peer.sendall(b"last line\n")
    peer.shutdown(socket.SHUT_WR)  # half-close
    run_until(lambda: len(log) == 2, what="input and EOF")
    assert log == [("input", "last line", wid), ("error", "read", 0, "", wid)]
    assert s._fds  # the (paused) write watch keeps the session
    s.heap["wheel"].put("bye")
    run_until(lambda: len(log) == 3, what="FlushedEvent")
    assert log[2] == ("flushed", wid)
    assert peer.recv(100) == b"bye\r\n"
    del s.heap["wheel"]
    poe_kernel.run()


def test_reset_is_a_read_error_with_econnreset(pair: tuple[socket.socket, socket.socket]) -> None:
    mine, peer = pair
    log: list[Any] = []
    s = wheel_session(log, Handle=mine)
    wid = s.heap["wheel"].ID
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # RST
    run_until(lambda: log, what="ErrorEvent")
    assert log[0][:3] == ("error", "read", errno.ECONNRESET)
    assert log[0][3] == "Connection reset by peer" and log[0][4] == wid
    del s.heap["wheel"]
    poe_kernel.run()


def test_write_error_is_reported_once(pair: tuple[socket.socket, socket.socket]) -> None:
    mine, peer = pair
    log: list[Any] = []
    s = wheel_session(log, Handle=mine)
    wheel = s.heap["wheel"]
    wheel.event(InputEvent=None)  # do not read: the error must come from writing
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()
    run_until(lambda: s.heap["wheel"].put("x" * 1000) or log, what="write ErrorEvent")
    assert log[0][:2] == ("error", "write")
    assert log[0][2] in (errno.EPIPE, errno.ECONNRESET)
    del s.heap["wheel"], wheel
    poe_kernel.run()


def test_ten_megabytes_through_a_slow_reader(pair: tuple[socket.socket, socket.socket]) -> None:
    mine, peer = pair
    mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    peer.setblocking(False)
    log: list[Any] = []
    block = b"0123456789abcdef" * 4096  # 64 KiB
    total = 160 * len(block)  # 10 MiB
    s = wheel_session(
        log,
        Handle=mine,
        Filter=Stream(),
        HighMark=4 * 1024 * 1024,
        LowMark=1024 * 1024,
        HighEvent="high",
        LowEvent="low",
    )
    wheel = s.heap["wheel"]
    returns = [wheel.put(block) for _ in range(160)]
    assert returns[0] == 0 and returns[-1] == 1  # put() reports high water
    assert ("high", wheel.ID) in log
    assert 0 < wheel.get_driver_out_octets() < total  # partly written at once
    assert wheel.get_driver_out_messages() >= 1
    received = bytearray()

    def slow_read(_: HandlerArgs) -> None:  # 64 KiB per 1 ms tick
        try:
            received.extend(peer.recv(64 * 1024))
        except BlockingIOError:
            pass
        if len(received) < total:
            _.kernel.delay("read", 0.001)

    session(_start=slow_read, read=slow_read)
    run_until(lambda: len(received) >= total, timeout=20, what="10 MiB")
    assert bytes(received) == block * 160
    events = [e[0] for e in log]
    assert events.count("high") == 1 and events.count("low") == 1
    assert events.index("high") < events.index("low")
    assert events.count("flushed") == 1 and events[-1] == "flushed"
    assert wheel.get_driver_out_octets() == 0
    del s.heap["wheel"], wheel
    poe_kernel.run()


def test_flushed_event_never_fires_inside_put(pair: tuple[socket.socket, socket.socket]) -> None:
    mine, peer = pair
    log: list[Any] = []

    def start(_: HandlerArgs) -> None:
        wheel = _[HEAP]["wheel"] = ReadWrite(Handle=mine, FlushedEvent="flushed")
        wheel.put("goodbye")
        log.append("after put")
        _[HEAP]["shutdown"] = True

    def flushed(_: HandlerArgs) -> None:
        log.append(("flushed", _[HEAP].get("shutdown")))
        del _[HEAP]["wheel"]

    session(_start=start, flushed=flushed)
    poe_kernel.run()
    assert log == ["after put", ("flushed", True)]
    assert peer.recv(100) == b"goodbye\r\n"


def test_a_line_of_100_megabytes_stays_within_max_length(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    mine, peer = pair
    limit = 1024 * 1024
    log: list[Any] = []
    line_filter = Line(MaxLength=limit)
    s = wheel_session(log, Handle=mine, Filter=line_filter)
    wid = s.heap["wheel"].ID
    rss_before = psutil.Process().memory_info().rss
    sent = [0]

    def blast() -> None:  # 100 MiB, no newline; stops when the server closes
        chunk = b"x" * (1024 * 1024)
        try:
            for _ in range(100):
                sent[0] += peer.send(chunk)
        except OSError:
            pass

    sender = threading.Thread(target=blast, daemon=True)
    sender.start()
    try:
        run_until(lambda: log, timeout=10, what="ErrorEvent")
        assert log == [("error", "read", errno.EMSGSIZE, "record too long", wid)]
        pending = line_filter.get_pending()
        assert pending is None or len(pending[0]) <= limit
        assert psutil.Process().memory_info().rss - rss_before < 50 * 1024 * 1024
        assert not s.heap["wheel"]._reading  # input stopped
    finally:
        del s.heap["wheel"]
        mine.close()  # the blaster gets an error and ends
        sender.join(10)
    assert not sender.is_alive()
    poe_kernel.run()


def test_pause_and_resume_input(pair: tuple[socket.socket, socket.socket]) -> None:
    mine, peer = pair
    log: list[Any] = []
    s = wheel_session(log, Handle=mine)
    wheel = s.heap["wheel"]
    assert wheel.pause_input() == 1
    peer.sendall(b"held\n")
    ticks = [0]
    run_until(lambda: ticks.__setitem__(0, ticks[0] + 1) or ticks[0] > 5, what="slices")
    assert log == []
    assert wheel.resume_input() == 1
    run_until(lambda: log, what="input")
    assert log == [("input", "held", wheel.ID)]
    del s.heap["wheel"], wheel
    poe_kernel.run()


def test_shutdown_output_half_closes(pair: tuple[socket.socket, socket.socket]) -> None:
    mine, peer = pair
    log: list[Any] = []
    s = wheel_session(log, Handle=mine)
    s.heap["wheel"].put("last")
    s.heap["wheel"].shutdown_output()
    peer.settimeout(5)
    data = b""
    while chunk := peer.recv(100):
        data += chunk
    assert data == b"last\r\n"  # then EOF
    peer.sendall(b"still reading\n")
    run_until(lambda: log, what="input after shutdown_output")
    assert log[0][:2] == ("input", "still reading")
    del s.heap["wheel"]
    poe_kernel.run()


def test_set_filter_mid_chunk_hands_the_rest_to_the_new_filter(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    mine, peer = pair
    log: list[Any] = []

    def start(_: HandlerArgs) -> None:
        _[HEAP]["wheel"] = ReadWrite(Handle=mine, InputEvent="input")

    def on_input(_: HandlerArgs) -> None:
        log.append(_[ARG0])
        if _[ARG0] == "RAW":
            _[HEAP]["wheel"].set_input_filter(Stream())

    s = session(_start=start, input=on_input)
    peer.sendall(b"one\nRAW\ntwo\nthree")
    run_until(lambda: len(log) == 3, what="records")
    assert log == ["one", "RAW", b"two\nthree"]
    del s.heap["wheel"]
    poe_kernel.run()


def test_separate_input_and_output_handles_and_filters() -> None:
    import os

    r, w = os.pipe()
    out_r, out_w = os.pipe()
    log: list[Any] = []
    try:
        s = wheel_session(
            log, InputHandle=r, OutputHandle=out_w, InputFilter=Line(), OutputFilter=Stream()
        )
        os.write(w, b"ping\n")
        run_until(lambda: log, what="input")
        s.heap["wheel"].put(b"raw")
        assert os.read(out_r, 10) == b"raw"
        del s.heap["wheel"]
        poe_kernel.run()
    finally:
        for fd in (r, w, out_r, out_w):
            os.close(fd)
    assert log[0][:2] == ("input", "ping")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"Handle": 0, "Fliter": Line()}, "Fliter"),
        ({"Handle": 0, "HighMark": "lots", "LowMark": 1}, "HighMark"),
        ({"Handle": 0, "HighMark": 10}, "LowMark"),
        ({"InputEvent": "x"}, "Handle"),
        ({"Handle": "not a handle"}, "Handle"),
    ],
)
def test_bad_parameters_fail_at_construction(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ParameterError, match=name):
        ReadWrite(**kwargs)


def test_the_common_parameters_skip_pydantic_with_the_same_values(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """The shape of nearly every wheel (a socket, a filter, event names) is
    checked without pydantic; the values are those pydantic would give, and
    everything else still goes through it (and its errors)."""
    from kernelish.wheels._readwrite import _PARAMS

    ReadWriteParams, _common_params = _PARAMS.model, _PARAMS.common
    mine, _peer = pair
    line = Line()
    common = [
        {"Handle": mine, "Filter": line, "InputEvent": "in", "ErrorEvent": "err"},
        {"handle": mine, "flushed_event": "fl", "input_event": None},
        {"Handle": mine},
        {"Handle": mine, "HighMark": 10, "LowMark": 1, "Backpressure": True},
        {"Handle": mine, "InputTimeout": 2.5},
    ]
    fields = list(ReadWriteParams.model_fields)
    for params in common:
        fast = _common_params(params)
        assert fast is not None, params
        slow = ReadWriteParams.model_validate(params)
        assert {f: getattr(fast, f) for f in fields} == {f: getattr(slow, f) for f in fields}
        assert fast.model_fields_set == slow.model_fields_set
    others = [
        {"Handle": mine.fileno()},  # an fd: pydantic's
        {"Handle": mine, "InputEvent": 5},
        {"Handle": mine, "Filter": "Line"},
        {"Handle": mine, "InputEvent": "a", "input_event": "b"},
        {"Handle": mine, "HighMark": 10, "LowMark": 10},  # refused: pydantic says why
        {"Handle": mine, "HighMark": 10, "LowMark": 1, "HighEvent": "high"},
        {"Handle": mine, "Backpressure": True},
        {"Handle": mine, "InputTimeout": 0},
        {"InputEvent": "in"},
    ]
    for params in others:
        assert _common_params(params) is None, params
    with pytest.raises(ParameterError, match="InputEvent"):
        ReadWrite(Handle=mine, InputEvent=5)
    with pytest.raises(ParameterError, match="given twice"):
        ReadWrite(Handle=mine, InputEvent="a", input_event="b")


# -- InputTimeout, Backpressure, is_idle (issue 13) ------------------------------------------


def test_input_timeout_ends_a_silent_or_half_line_peer(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    import time

    mine, peer = pair
    log: list[Any] = []
    wheel_session(log, Handle=mine, InputTimeout=0.3)
    start = time.monotonic()
    peer.sendall(b"one\n")
    run_until(lambda: log, what="the first line")
    peer.sendall(b"half a li")  # never ended
    run_until(lambda: len(log) == 2, 3, "the timeout")
    took = time.monotonic() - start
    assert log[0][:2] == ("input", "one")
    assert log[1][:4] == ("error", "read", errno.ETIMEDOUT, "Connection timed out")
    assert 0.3 <= took < 1.0


def test_input_timeout_counts_from_the_last_record(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    import time

    mine, peer = pair
    log: list[Any] = []
    wheel_session(log, Handle=mine, InputTimeout=0.4)
    start = time.monotonic()
    last = start
    for n in range(4):  # a line every 0.2 s: never idle for 0.4 s
        peer.sendall(b"x\n")
        run_until(lambda n=n: len(log) > n, what="a line")
        last = time.monotonic()  # the line is in: the idle time starts again
        due = start + 0.2 * (n + 1)
        run_until(lambda due=due: time.monotonic() > due, what="the next send")
    assert [e[0] for e in log] == ["input"] * 4
    run_until(lambda: len(log) == 5, 3, "the timeout")
    assert log[4][1:3] == ("read", errno.ETIMEDOUT)
    # Counted from the last line, not from the first one or the wheel's start
    # (a timer's due time is rounded to the poll's millisecond).
    assert time.monotonic() - last >= 0.4 - 0.005


def test_backpressure_holds_input_at_high_mark_and_is_idle_only_when_done() -> None:
    # A UNIX socket pair: its buffers (about 200 KiB) fill without TCP's
    # window dynamics; 100 replies of 10 KB do not fit.
    mine, peer = socket.socketpair()
    mine.setblocking(False)
    log: list[Any] = []
    big = "y" * 10_000

    def start(_: HandlerArgs) -> None:
        _[HEAP]["wheel"] = ReadWrite(
            Handle=mine, InputEvent="input", ErrorEvent="error", HighMark=20_000,
            LowMark=5_000, Backpressure=True,
        )  # fmt: skip

    def got(_: HandlerArgs) -> None:
        log.append(_[ARG0])
        _[HEAP]["wheel"].put(big)

    s = session(_start=start, input=got, error=lambda _: None)
    wheel = s.heap["wheel"]
    peer.sendall(b"".join(b"%d\n" % i for i in range(100)))
    run_until(lambda: len(log) >= 3, what="some requests")
    import time

    settle = time.monotonic() + 0.2
    run_until(lambda: time.monotonic() > settle, what="the wheel to settle")
    held = len(log)
    settle = time.monotonic() + 0.2
    run_until(lambda: time.monotonic() > settle, what="more time")
    assert len(log) == held < 100, "input held while the output is above HighMark"
    assert 20_000 <= wheel.get_driver_out_octets() < 20_000 + 10_002, "HighMark + one reply"
    assert not wheel.is_idle()
    received = 0
    peer.setblocking(False)

    def drain() -> bool:
        nonlocal received
        try:
            while chunk := peer.recv(1 << 16):
                received += len(chunk)
        except BlockingIOError:
            pass
        return len(log) == 100 and wheel.is_idle()

    run_until(drain, 10, "every request answered once the peer reads")
    assert log == [str(i) for i in range(100)], "in order, none lost"
    del s.heap["wheel"]
    mine.close()
    peer.close()


# -- the write watch: POE's hold on the session, made when needed ----------------------------


def test_after_end_of_file_the_wheel_still_holds_its_session(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """POE-SEMANTICS 7.2: end of file removes the read watch, and the paused
    write watch holds the session until the wheel is dropped -- also now that
    a wheel reading its handle makes the write watch only when it needs it."""
    mine, peer = pair
    log: list[Any] = []
    s = wheel_session(log, Handle=mine)
    s.heap["wheel"].put("hello")  # written at once: no write watch yet
    assert peer.recv(100) == b"hello\r\n"
    peer.close()
    run_until(lambda: any(e[0] == "error" for e in log), what="end of file")
    assert [e[1:3] for e in log if e[0] == "error"] == [("read", 0)]
    for _ in range(3):  # passes end with the sweep: the session is not collected
        poe_kernel.post(s, "nothing")
        poe_kernel.run_one_timeslice()
    assert s.alive
    assert poe_kernel.introspection.handles_of(s) == 1
    del s.heap["wheel"]
    run_until(lambda: not s.alive, what="the session to stop")


def test_output_that_must_wait_arms_the_write_watch(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """A put the handle does not take at once is written when it is
    writable; FlushedEvent follows, and the watch is paused again."""
    mine, peer = pair
    mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    log: list[Any] = []
    s = wheel_session(log, Handle=mine, Filter=Stream())
    big = b"z" * 1_000_000
    s.heap["wheel"].put(big)
    assert s.heap["wheel"].get_driver_out_octets() > 0  # queued: the write watch waits
    got = bytearray()
    peer.setblocking(False)

    def drain() -> bool:
        try:
            while chunk := peer.recv(1 << 16):
                got.extend(chunk)
        except BlockingIOError:
            pass
        return len(got) == len(big) and any(e[0] == "flushed" for e in log)

    run_until(drain, 10, "the whole output and FlushedEvent")
    assert bytes(got) == big
    assert [e[0] for e in log] == ["flushed"]
    del s.heap["wheel"]
