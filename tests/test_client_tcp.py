"""ClientTCP against real sockets: POE's parameters, callbacks, positions,
commands and heap keys, and its known bugs not copied."""

from __future__ import annotations

import errno
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from kernelish import (
    ARG0,
    ARG1,
    ARG2,
    HEAP,
    KERNEL,
    OBJECT,
    SESSION,
    STATE,
    HandlerArgs,
    Session,
    poe_kernel,
)
from kernelish._params import ParameterError
from kernelish.components.client_tcp import ClientTCP
from kernelish.components.server_tcp import ServerTCP
from kernelish.filters import Line
from kernelish.wheels import ReadWrite

from ._wheels import run_until


def echo(_: HandlerArgs) -> None:
    _[HEAP]["client"].put(_[ARG0])


def echo_server(**params: Any) -> ServerTCP:
    return ServerTCP(Address="127.0.0.1", Alias="echo", ClientInput=echo, **params)


def finish() -> None:
    poe_kernel.post("echo", "shutdown")
    poe_kernel.run()


def test_a_round_trip_with_every_callback_in_order() -> None:
    server = echo_server()
    trace: list[Any] = []

    def started(_: HandlerArgs) -> None:
        trace.append(("started", _[ARG0], _[ARG1], _[HEAP]["connected"]))

    def connected(_: HandlerArgs) -> None:
        sock, address, port = _[ARG0], _[ARG1], _[ARG2]
        heap = _[HEAP]
        trace.append(("connected", type(sock).__name__, address, port, heap["connected"]))
        assert isinstance(heap["server"], ReadWrite)
        heap["server"].put("hello")

    def server_input(_: HandlerArgs) -> None:
        trace.append(("input", _[ARG0], _[HEAP]["shutdown"]))
        _[KERNEL].yield_("shutdown")

    client = ClientTCP(
        RemoteAddress="127.0.0.1",
        RemotePort=server.port,
        Args=["a", 1],
        Started=started,
        Connected=connected,
        ServerInput=server_input,
        ServerFlushed=lambda _: trace.append(("flushed",)),
        Disconnected=lambda _: trace.append(("disconnected", _[HEAP]["connected"])),
        ServerError=lambda _: trace.append(("error", *_[ARG0 : ARG2 + 1])),
    )
    assert isinstance(client, int) and trace == [("started", "a", 1, False)]
    run_until(lambda: ("disconnected", False) in trace, what="Disconnected")
    assert trace[1] == ("connected", "socket", "127.0.0.1", server.port, True)
    assert ("input", "hello", False) in trace
    assert trace[-1] == ("disconnected", False)
    assert trace.count(("disconnected", False)) == 1
    finish()


def test_refused_is_connect_error_without_disconnected() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    trace: list[Any] = []
    ClientTCP(
        RemoteAddress="127.0.0.1",
        RemotePort=port,
        ServerInput=echo,
        ConnectError=lambda _: trace.append(_[ARG0 : ARG2 + 1]),
        Disconnected=lambda _: trace.append("disconnected"),
    )
    poe_kernel.run()  # the session ends: nothing asked for a reconnect
    assert trace == [("connect", errno.ECONNREFUSED, "Connection refused")]


def test_connect_timeout_is_connect_error_etimedout() -> None:
    # A listener whose backlog is full drops SYNs: connect() hangs.
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    port = full.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    trace: list[Any] = []
    ClientTCP(
        RemoteAddress="127.0.0.1",
        RemotePort=port,
        ConnectTimeout=0.3,
        ServerInput=echo,
        ConnectError=lambda _: (trace.append(_[ARG0 : ARG2 + 1]), _[HEAP].pop("server")),
    )
    poe_kernel.run()
    assert trace == [("connect", errno.ETIMEDOUT, "Connection timed out")]
    for filler in fillers:
        filler.close()
    full.close()


def test_server_closing_is_server_error_then_one_disconnected_then_reconnect() -> None:
    trace: list[Any] = []

    def server_input(_: HandlerArgs) -> None:
        del _[HEAP]["client"]  # the server hangs up

    server = ServerTCP(
        Address="127.0.0.1",
        Alias="echo",
        ClientInput=server_input,
        ClientConnected=lambda _: _[HEAP]["client"].put("hi"),
    )

    def disconnected(_: HandlerArgs) -> None:
        trace.append(("disconnected", _[HEAP]["connected"]))
        if len([t for t in trace if t[0] == "connected"]) < 2:
            _[KERNEL].yield_("reconnect")

    ClientTCP(
        RemoteAddress="127.0.0.1",
        RemotePort=server.port,
        Connected=lambda _: trace.append(("connected",)),
        ServerInput=lambda _: _[HEAP]["server"].put("bye"),
        ServerError=lambda _: trace.append(("error", _[ARG0], _[ARG1])),
        Disconnected=disconnected,
    )
    run_until(lambda: len(trace) >= 6, what="two connections")
    assert trace == [
        ("connected",),
        ("error", "read", 0),
        ("disconnected", False),
        ("connected",),
        ("error", "read", 0),
        ("disconnected", False),
    ]
    finish()


def test_connect_command_goes_to_a_new_address_and_port() -> None:
    first = echo_server()
    second = ServerTCP(Address="127.0.0.1", ClientInput=echo, Alias="second")
    peers: list[Any] = []

    def connected(_: HandlerArgs) -> None:
        peers.append(_[ARG2])
        if len(peers) == 1:
            _[KERNEL].yield_("connect", "127.0.0.1", second.port)
        else:
            _[KERNEL].yield_("shutdown")

    ClientTCP(
        RemoteAddress="127.0.0.1",
        RemotePort=first.port,
        Connected=connected,
        ServerInput=echo,
        Alias="cli",
    )
    run_until(lambda: len(peers) == 2, what="the second connection")
    assert peers == [first.port, second.port]
    poe_kernel.post("second", "shutdown")
    finish()


def test_shutdown_flushes_then_disconnected_even_when_the_flush_fails() -> None:
    """POE misses Disconnected when a write error ends a shutdown that was
    waiting for its output: here it comes, once."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    trace: list[Any] = []

    def connected(_: HandlerArgs) -> None:
        _[HEAP]["server"].put("x" * 8_000_000)
        _[KERNEL].yield_("shutdown")
        trace.append(("connected", _[HEAP]["connected"]))

    ClientTCP(
        RemoteAddress="127.0.0.1",
        RemotePort=listener.getsockname()[1],
        Connected=connected,
        ServerInput=echo,
        ServerError=lambda _: trace.append(("error", _[ARG0])),
        Disconnected=lambda _: trace.append(("disconnected", _[HEAP]["connected"])),
    )
    run_until(lambda: trace, what="Connected")
    conn, _peer = listener.accept()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # RST while the client still has output queued
    poe_kernel.run()
    assert trace[0] == ("connected", True), "connected until the connection is gone"
    assert ("error", "write") in trace or ("error", "read") in trace
    assert ("disconnected", False) in trace
    assert trace.count(("disconnected", False)) == 1
    listener.close()


def test_pre_connect_refuses_and_filter_forms() -> None:
    server = ServerTCP(
        Address="127.0.0.1", Alias="echo", ClientInput=echo, ClientFilter=Line(Literal="|")
    )
    trace: list[Any] = []
    ClientTCP(
        RemoteAddress="127.0.0.1",
        RemotePort=server.port,
        PreConnect=lambda _: trace.append(("pre", _[HEAP]["connected"])) or None,
        Connected=lambda _: trace.append("connected"),
        ServerInput=echo,
    )
    for spec in (Line(Literal="|"), (Line, {"Literal": "|"})):
        ClientTCP(
            RemoteAddress="127.0.0.1",
            RemotePort=server.port,
            Filter=spec,
            Connected=lambda _: _[HEAP]["server"].put("ping"),
            ServerInput=lambda _: (trace.append(_[ARG0]), _[KERNEL].yield_("shutdown")),
        )
    run_until(lambda: trace.count("ping") == 2, what="two pings")
    assert ("pre", False) in trace and "connected" not in trace
    finish()


def test_bind_address_port_unix_domain_and_snake_case(tmp_path: Path) -> None:
    server = echo_server()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local_port = probe.getsockname()[1]
    ports: list[Any] = []
    ClientTCP(
        remote_address="127.0.0.1",
        remote_port=server.port,
        bind_address="127.0.0.1",
        bind_port=local_port,
        connected=lambda _: (ports.append(_[ARG0].getsockname()[1]), _[KERNEL].yield_("shutdown")),
        server_input=echo,
    )
    run_until(lambda: ports, what="Connected")
    assert ports == [local_port]
    finish()

    path = str(tmp_path / "c.sock")
    ServerTCP(Address=path, Domain=socket.AF_UNIX, ClientInput=echo, Alias="echo")
    got: list[Any] = []
    ClientTCP(
        RemoteAddress=path,
        RemotePort=None,
        Domain=socket.AF_UNIX,
        Connected=lambda _: _[HEAP]["server"].put("unix"),
        ServerInput=lambda _: (got.append(_[ARG0]), _[KERNEL].yield_("shutdown")),
    )
    run_until(lambda: got, what="the UNIX round trip")
    assert got == ["unix"]
    finish()


def test_default_server_error_shuts_down_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    server = ServerTCP(
        Address="127.0.0.1", Alias="echo", ClientInput=lambda _: _[HEAP].pop("client")
    )
    ids: list[int] = []
    ClientTCP(
        RemoteAddress="127.0.0.1",
        RemotePort=server.port,
        Connected=lambda _: (ids.append(_[SESSION].ID), _[HEAP]["server"].put("x")),
        ServerInput=echo,
    )
    import logging

    with caplog.at_level(logging.INFO, "kernelish.components.client_tcp"):
        run_until(lambda: ids and poe_kernel.ID_id_to_session(ids[0]) is None, what="the end")
    assert "got read error 0 (Normal disconnection)" in caplog.text
    finish()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"RemotePort": 1, "ServerInput": echo}, "missing required parameter 'RemoteAddress'"),
        ({"RemoteAddress": "h", "ServerInput": echo}, "missing required parameter 'RemotePort'"),
        ({"RemoteAddress": "h", "RemotePort": 1}, "missing required parameter 'ServerInput'"),
        ({"RemoteAddress": "h", "RemotePort": None, "ServerInput": echo}, "RemotePort is req"),
        ({"RemoteAddress": "h", "RemotePort": 1, "ServerInput": echo, "HighMark": 9}, "all four"),
        ({"RemoteAddress": "h", "RemotePort": 1, "ServerInput": echo, "Filter": 3}, "Filter must"),
        ({"RemoteAddress": "h", "RemotePort": 1, "ServerInput": echo, "ConnectTimeout": -1},
         "ConnectTimeout"),
        ({"RemoteAddress": "h", "RemotePort": 1, "ServerInput": echo,
          "InlineStates": {"reconnect": echo}}, "may not be replaced"),
        ({"RemoteAddress": "h", "RemotePort": 1, "ServerInput": echo, "Connect": echo},
         "unknown parameter 'Connect'"),
    ],
)  # fmt: skip
def test_bad_parameters_are_refused_naming_them(params: dict[str, Any], message: str) -> None:
    before = len(poe_kernel.introspection.sessions())
    with pytest.raises(ParameterError, match=message):
        ClientTCP(**params)
    assert len(poe_kernel.introspection.sessions()) == before


class Handlers:
    def obj(self, _: HandlerArgs) -> None:
        _[HEAP]["server"].put("object")


class Package:
    @classmethod
    def pkg(cls, _: HandlerArgs) -> None:
        _[HEAP]["server"].put("package")


def test_states_session_params_marks_and_input_timeout() -> None:
    server = echo_server()
    got: list[Any] = []
    marks: list[str] = []

    def connected(_: HandlerArgs) -> None:
        got.append(("options", _[SESSION].options))
        for event in ("inline", "obj", "pkg"):
            _[KERNEL].yield_(event)

    def server_input(_: HandlerArgs) -> None:
        got.append(_[ARG0])

    ClientTCP(
        RemoteAddress="127.0.0.1",
        RemotePort=server.port,
        Connected=connected,
        ServerInput=server_input,
        ServerError=lambda _: got.append(("error", _[ARG0], _[ARG1])),
        InlineStates={"inline": lambda _: _[HEAP]["server"].put("inline")},
        ObjectStates=[(Handlers(), ["obj"])],
        PackageStates=[(Package, ["pkg"])],
        SessionParams={"options": {"trace": 1}},
        HighMark=1_000_000,
        LowMark=1_000,
        ServerHigh=lambda _: marks.append("high"),
        ServerLow=lambda _: marks.append("low"),
        InputTimeout=0.3,
    )
    run_until(lambda: ("error", "read", errno.ETIMEDOUT) in got, what="the input timeout")
    assert got[:4] == [("options", {"trace": 1}), "inline", "object", "package"]
    finish()


class CountedSession(Session):
    """A SessionType whose ``create`` counts (ClientTCP must go through it)."""

    made = 0

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> Session | None:
        cls.made += 1
        return super().create(*args, **kwargs)


@pytest.mark.parametrize("session_type", [Session, CountedSession])
def test_inline_states_options_and_session_type(session_type: type[Session]) -> None:
    server = echo_server()
    got: list[Any] = []
    before = CountedSession.made

    def connected(_: HandlerArgs) -> None:
        session = _[SESSION]
        got.append((type(session), session.options, _[OBJECT], _[ARG2], _[STATE]))
        _[KERNEL].yield_("inline", "x")

    ClientTCP(
        RemoteAddress="127.0.0.1",
        RemotePort=server.port,
        Connected=connected,
        ServerInput=lambda _: (got.append(_[ARG0]), _[KERNEL].yield_("shutdown")),
        Disconnected=lambda _: got.append(("disconnected", sorted(_[HEAP]))),
        inline_states={"inline": lambda _: _[HEAP]["server"].put("inline " + _[ARG0])},
        SessionParams=["options", {"trace": 1}],
        SessionType=session_type,
        Args=("a",),
    )
    run_until(lambda: got and got[-1][0] == "disconnected", what="Disconnected")
    assert got[0] == (session_type, {"trace": 1}, None, server.port, "got_connect_success")
    assert got[1] == "inline x"
    # POE's heap keys, and only those.
    assert got[2] == ("disconnected", ["connected", "shutdown", "shutdown_on_error"])
    assert CountedSession.made == before + (session_type is CountedSession)
    with pytest.raises(ParameterError, match="may not be replaced: shutdown"):
        ClientTCP(
            RemoteAddress="127.0.0.1",
            RemotePort=server.port,
            ServerInput=echo,
            inline_states={"shutdown": echo},
        )
    finish()
