"""select_read / select_write / pause / resume on pipes and socketpairs
(POE-SEMANTICS 1.9, 3.1)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest

from kernelish import ARG0, ARG1, ARG2, SENDER, SESSION, HandlerArgs, poe_kernel
from kernelish._selector import KernelSelector

from ._wheels import run_until, session


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_select_read_on_a_pipe_calls_back_with_handle_mode_and_extra(pipe: tuple[int, int]) -> None:
    r, w = pipe
    seen: list[tuple[object, ...]] = []
    returns: list[int] = []

    def start(_: HandlerArgs) -> None:
        returns.append(_.kernel.select_read(r, "readable", "x", "y"))

    def readable(_: HandlerArgs) -> None:
        seen.append((_[ARG0], _[ARG1], _[ARG2], _[SENDER] is _[SESSION], os.read(r, 100)))
        returns.append(_.kernel.select_read(r))

    s = session(_start=start, readable=readable)
    os.write(w, b"hi")
    poe_kernel.run()
    assert returns == [0, 0]
    assert seen == [(r, 0, "x", True, b"hi")]
    assert not s._fds


def test_select_write_on_a_socketpair(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _b = pair
    seen: list[tuple[object, int]] = []

    def start(_: HandlerArgs) -> None:
        assert _.kernel.select_write(a, "writable") == 0

    def writable(_: HandlerArgs) -> None:
        seen.append((_[ARG0], _[ARG1]))
        _.kernel.select_write(a)

    session(_start=start, writable=writable)
    poe_kernel.run()
    assert seen == [(a, 1)]
    assert a.gettimeout() == 0.0  # conditioned: non-blocking


def test_pause_and_resume_return_values(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _b = pair
    out: dict[str, int] = {}

    def start(_: HandlerArgs) -> None:
        k = _.kernel
        out["pause_unwatched"] = k.select_pause_read(a)
        out["resume_unwatched"] = k.select_resume_write(a)
        k.select_read(a, "never")
        out["pause_read"] = k.select_pause_read(a)
        out["pause_write_unwatched"] = k.select_pause_write(a)
        out["resume_read"] = k.select_resume_read(a)
        k.select_read(a)

    session(_start=start, never=lambda _: None)
    poe_kernel.run()
    assert out == {
        "pause_unwatched": 0,
        "resume_unwatched": 0,
        "pause_read": 1,
        "pause_write_unwatched": 0,
        "resume_read": 1,
    }


def test_a_paused_handle_keeps_its_session_alive(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    events: list[str] = []

    def start(_: HandlerArgs) -> None:
        _.kernel.select_read(a, "readable")
        _.kernel.select_pause_read(a)

    def readable(_: HandlerArgs) -> None:
        events.append("readable:" + a.recv(10).decode())
        _.kernel.select_read(a)

    s = session(_start=start, readable=readable, _stop=lambda _: events.append("_stop"))
    b.send(b"x")
    # Data is waiting, but the watch is paused: nothing fires, the session lives.
    ticks = [0]
    run_until(lambda: ticks.__setitem__(0, ticks[0] + 1) or ticks[0] > 20, what="20 slices")
    assert events == []
    assert poe_kernel.introspection.handles_of(s) == 1
    assert poe_kernel.run_as(s, poe_kernel.select_resume_read, a) == 1
    poe_kernel.run()
    assert events == ["readable:x", "_stop"]


def test_one_reference_per_distinct_fd(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    refs: list[int] = []

    def start(_: HandlerArgs) -> None:
        s = _[SESSION]
        base = s._refs
        _.kernel.select_read(a, "ev")
        _.kernel.select_write(a, "ev")
        refs.append(s._refs - base)
        _.kernel.select_read(b, "ev")
        refs.append(s._refs - base)
        _.kernel.select_read(a)
        refs.append(s._refs - base)
        _.kernel.select(a)
        _.kernel.select(b)
        refs.append(s._refs - base)

    session(_start=start, ev=lambda _: None)
    poe_kernel.run()
    assert refs == [1, 2, 2, 0]


def test_two_sessions_cannot_watch_one_fd_in_one_mode(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, _b = pair
    errors: list[str] = []

    def first(_: HandlerArgs) -> None:
        _.kernel.select_read(a, "ev")
        _.kernel.select_pause_read(a)

    def second(_: HandlerArgs) -> None:
        _.kernel.select_write(a, "ev")  # another mode: fine
        _.kernel.select_pause_write(a)
        try:
            _.kernel.select_read(a, "ev")
        except RuntimeError as exc:
            errors.append(str(exc))

    s1 = session(_start=first, ev=lambda _: None)
    s2 = session(_start=second, ev=lambda _: None)
    assert len(errors) == 1
    assert "already watched for read" in errors[0]
    assert list(s1._fds) == [a.fileno()] and list(s2._fds) == [a.fileno()]
    poe_kernel.stop()


def test_level_triggered_until_drained(pipe: tuple[int, int]) -> None:
    r, w = pipe
    reads: list[bytes] = []

    def start(_: HandlerArgs) -> None:
        _.kernel.select_read(r, "readable")

    def readable(_: HandlerArgs) -> None:
        data = os.read(r, 1)
        reads.append(data)
        if len(reads) == 3:
            _.kernel.select_read(r)

    session(_start=start, readable=readable)
    os.write(w, b"abc")
    poe_kernel.run()
    assert reads == [b"a", b"b", b"c"]


def test_a_reused_fd_replaces_the_stale_watch_of_a_closed_socket() -> None:
    a, b = socket.socketpair()
    fd = a.fileno()
    log: list[str] = []

    def start(_: HandlerArgs) -> None:
        _.kernel.select_read(a, "ev")
        a.close()  # closed while watched
        c, d = socket.socketpair()
        _.heap["pair"] = (c, d)
        assert fd in (c.fileno(), d.fileno())
        reused = c if c.fileno() == fd else d
        _.kernel.select_read(reused, "ev2")
        (d if reused is c else c).send(b"z")
        _.heap["reused"] = reused

    def ev2(_: HandlerArgs) -> None:
        log.append(_[ARG0].recv(5).decode())
        _.kernel.select_read(_[ARG0])

    s = session(_start=start, ev=lambda _: log.append("stale"), ev2=ev2)
    poe_kernel.run()
    assert log == ["z"]
    for sock in s.heap["pair"]:
        sock.close()
    b.close()


def test_a_paused_standing_watch_never_wakes_the_selector() -> None:
    """KernelSelector waits on its standing set while a listener is active;
    a paused listener with a connection pending must not be in that set (it
    would wake every wait, and swallow the wakeup another process needed)."""
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    selector = KernelSelector()
    try:
        a, b = (sock.fileno() for sock in listeners)
        selector.exclusive_read(a, "a", True)
        selector.exclusive_read(b, "b", True)
        client = socket.create_connection(listeners[0].getsockname())
        selector.exclusive_read(a, "a", False)  # paused while b is active
        start = time.monotonic()
        assert selector.select(0.2) == []
        assert time.monotonic() - start >= 0.15, "woken by the paused listener"
        selector.exclusive_read(a, "a", True)
        assert [(key.data, mask) for key, mask in selector.select(2)] == [("a", 1)]
        client.close()
    finally:
        selector.close()
        for sock in listeners:
            sock.close()
