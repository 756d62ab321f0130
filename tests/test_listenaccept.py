"""ListenAccept: POE's three AcceptEvent arguments, ErrorEvent, event(),
pause/resume, and the accept loop it shares with SocketFactory."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Any

import pytest

from kernelish import ARG0, HEAP, HandlerArgs, poe_kernel
from kernelish._params import ParameterError
from kernelish.wheels import ListenAccept

from ._wheels import run_until, session


def listening(family: int = socket.AF_INET, where: Any = ("127.0.0.1", 0)) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind(where)
    sock.listen()
    return sock


def acceptor(log: list[Any], handle: Any, **params: Any) -> Any:
    def start(_: HandlerArgs) -> None:
        _[HEAP]["wheel"] = ListenAccept(
            Handle=handle, AcceptEvent="accepted", ErrorEvent="failed", **params
        )

    def accepted(_: HandlerArgs) -> None:
        sock = _[ARG0]
        log.append(("accepted", *_.args, sock.gettimeout(), sock.get_inheritable()))
        sock.close()

    def failed(_: HandlerArgs) -> None:
        log.append(("failed", *_.args))
        _[HEAP].pop("wheel", None)

    return session(_start=start, accepted=accepted, failed=failed)


def test_accept_event_is_socket_peer_and_wheel_id() -> None:
    log: list[Any] = []
    server = listening()
    port = server.getsockname()[1]
    s = acceptor(log, server)
    wheel = s.heap["wheel"]
    with socket.create_connection(("127.0.0.1", port)) as client:
        run_until(lambda: log, what="AcceptEvent")
        _, sock, peer, wheel_id, timeout, inheritable = log[0]
        assert peer == client.getsockname(), "accept()'s peer address, as Python gives it"
        assert wheel_id == wheel.ID
        assert isinstance(sock, socket.socket)
        assert timeout == 0.0 and not inheritable, "non-blocking, close-on-exec"
    del s.heap["wheel"], wheel
    assert server.fileno() >= 0, "the program still holds its socket: not closed"
    server.close()
    poe_kernel.run()


def test_unix_socket_peer_is_the_empty_path(tmp_path: Path) -> None:
    log: list[Any] = []
    path = str(tmp_path / "la.sock")
    server = listening(socket.AF_UNIX, path)
    s = acceptor(log, server)
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(path)
        run_until(lambda: log, what="AcceptEvent")
    assert log[0][2] == ""  # an unbound UNIX client has no path
    del s.heap["wheel"]
    poe_kernel.run()
    server.close()


def test_error_event_reports_accept_failures_with_four_arguments() -> None:
    log: list[Any] = []
    server = listening()
    s = acceptor(log, server)
    wheel_id = s.heap["wheel"].ID
    server.shutdown(socket.SHUT_RDWR)  # accept() now fails with EINVAL
    run_until(lambda: log, what="ErrorEvent")
    assert log[0][:3] == ("failed", "accept", errno.EINVAL)
    assert log[0][4] == wheel_id
    poe_kernel.run()
    server.close()


def test_pause_resume_and_rename_events() -> None:
    log: list[Any] = []
    server = listening()
    port = server.getsockname()[1]
    s = acceptor(log, server)
    wheel = s.heap["wheel"]
    wheel.pause_accept()
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    try:
        ticks = [0]
        run_until(lambda: ticks.__setitem__(0, ticks[0] + 1) or ticks[0] > 10, what="slices")
        assert log == [], "paused: the connections wait in the backlog"
        s._states["renamed"] = s._states["accepted"]  # a state of the same handler
        wheel.event(AcceptEvent="renamed")
        wheel.resume_accept()
        run_until(lambda: len(log) == 2, what="both accepted once resumed")
        with pytest.raises(ValueError, match="AcceptEvent requires an event name"):
            wheel.event(AcceptEvent=None)
        with pytest.raises(TypeError, match="unknown event parameter"):
            wheel.event(SuccessEvent="x")
    finally:
        for c in clients:
            c.close()
    del s.heap["wheel"], wheel
    poe_kernel.run()
    server.close()


@pytest.mark.parametrize(("batch", "slices"), [(1, 3), (16, 1)])
def test_accept_batch(batch: int, slices: int) -> None:
    log: list[Any] = []
    server = listening()
    port = server.getsockname()[1]
    s = acceptor(log, server, AcceptBatch=batch)
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        counts = []
        while len(log) < 3:
            poe_kernel.run_one_timeslice()
            counts.append(len(log))
        assert len([c for c in counts if c]) <= slices + 1
        assert counts[-1] == 3
        if batch == 1:
            assert 1 in counts and 2 in counts, "one accept per readiness"
    finally:
        for c in clients:
            c.close()
    del s.heap["wheel"]
    poe_kernel.run()
    server.close()


def test_bad_parameters_are_refused_naming_them() -> None:
    unbound = socket.socket()
    try:
        with pytest.raises(ParameterError, match="Handle must be a listening socket"):
            ListenAccept(Handle=unbound, AcceptEvent="a")
    finally:
        unbound.close()
    server = listening()
    try:
        with pytest.raises(ParameterError, match="missing required parameter 'AcceptEvent'"):
            ListenAccept(Handle=server)
        with pytest.raises(ParameterError, match="unknown parameter 'SuccessEvent'"):
            ListenAccept(Handle=server, AcceptEvent="a", SuccessEvent="b")
    finally:
        server.close()
