"""Wheel IDs and POE's DESTROY: dropping a wheel releases its watchers at once
(POE-SEMANTICS 7.0)."""

from __future__ import annotations

import gc
import socket
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from kernelish import HEAP, HandlerArgs, poe_kernel
from kernelish.wheels import ReadWrite, SocketFactory, _base

from ._wheels import run_until, session


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Only reference counting may free wheels here: no cycle collector."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_ids_are_one_process_wide_sequence_freed_on_destruction() -> None:
    ids: list[int] = []

    def start(_: HandlerArgs) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            port = taken.getsockname()[1]
            listener = SocketFactory(BindAddress="127.0.0.1", SuccessEvent="s", FailureEvent="f")
            failed = SocketFactory(
                BindAddress="127.0.0.1", BindPort=port, SuccessEvent="s", FailureEvent="f"
            )
        a, b = socket.socketpair()
        rw = ReadWrite(Handle=a)
        ids.extend([listener.ID, failed.ID, rw.ID])
        _[HEAP]["keep"] = [listener, failed, rw, b]
        assert set(ids) <= _base._ids_in_use

    s = session(_start=start, s=lambda _: None, f=lambda _: None)
    assert ids == [ids[0], ids[0] + 1, ids[0] + 2]
    # The counter skips IDs still in use.
    _base._last_id = ids[0] - 1
    a, b = socket.socketpair()
    skipped = poe_kernel.run_as(s, lambda: ReadWrite(Handle=a))
    assert ids[2] + 1 == skipped.ID
    keep = s.heap.pop("keep")
    keep.pop().close()
    del keep, skipped
    assert not set(ids) & _base._ids_in_use  # freed on destruction
    a.close()
    b.close()
    poe_kernel.run()


def test_dropping_a_readwrite_releases_its_watchers_at_once(no_gc: None) -> None:
    a, b = socket.socketpair()
    fd = a.fileno()
    events: list[str] = []
    handles = [a]
    del a  # the wheel will hold the socket's last reference

    def start(_: HandlerArgs) -> None:
        _[HEAP]["wheel"] = ReadWrite(Handle=handles.pop(), InputEvent="input")

    s = session(_start=start, input=lambda _: None, _stop=lambda _: events.append("_stop"))
    ref = weakref.ref(s.heap["wheel"])
    assert poe_kernel.io.is_watched(fd, 0)
    del s.heap["wheel"]
    assert ref() is None  # no cycle kept it
    assert not poe_kernel.io.is_watched(fd, 0) and not poe_kernel.introspection.handles_of(s)
    b.settimeout(5)
    assert b.recv(10) == b""  # its socket was closed: the peer sees EOF
    assert events == []
    poe_kernel.run()  # a session whose only wheel went stops
    assert events == ["_stop"]
    b.close()


def test_dropping_a_listener_inside_a_handler_stops_the_session(no_gc: None) -> None:
    events: list[str] = []

    def start(_: HandlerArgs) -> None:
        _[HEAP]["listener"] = SocketFactory(
            BindAddress="127.0.0.1", SuccessEvent="accepted", FailureEvent="failed"
        )
        _[HEAP]["port"] = _[HEAP]["listener"].getsockname()[1]

    def accepted(_: HandlerArgs) -> None:
        _.args[0].close()
        events.append("accepted")
        del _[HEAP]["listener"]  # the batch must end here: one SuccessEvent

    s = session(
        _start=start,
        accepted=accepted,
        failed=lambda _: None,
        _stop=lambda _: events.append("_stop"),
    )
    port = s.heap["port"]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    poe_kernel.run()
    assert events == ["accepted", "_stop"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port)).close()
    for c in clients:
        c.close()


def test_wheel_swap_keeps_the_shared_socket_open(no_gc: None) -> None:
    a, b = socket.socketpair()
    got: list[Any] = []
    handles = [a]
    del a

    def start(_: HandlerArgs) -> None:
        _[HEAP]["wheel"] = ReadWrite(Handle=handles.pop(), InputEvent="old")

    def swap(_: HandlerArgs) -> None:
        got.append(("old", _.args[0]))
        old = _[HEAP]["wheel"]
        _[HEAP]["wheel"] = ReadWrite(Handle=old.get_input_handle(), InputEvent="new")

    def new(_: HandlerArgs) -> None:
        got.append(("new", _.args[0]))
        del _[HEAP]["wheel"]

    session(_start=start, old=swap, new=new)
    b.sendall(b"first\n")
    run_until(lambda: got, what="old wheel input")
    b.sendall(b"second\n")
    poe_kernel.run()
    assert got == [("old", "first"), ("new", "second")]
    b.close()
