"""ServerTCP against real sockets: POE's parameters, events, positions and
heap keys (POE-SEMANTICS 9), its known bugs not copied, and the bad input
of the issue -- each closes only its own connection."""

from __future__ import annotations

import errno
import logging
import socket
import struct
import traceback
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
from kernelish.components.server_tcp import ServerTCP
from kernelish.filters import Line, Stream
from kernelish.wheels import ReadWrite

from ._tcp import Peer
from ._wheels import run_until

LOCAL = {"Address": "127.0.0.1"}


def echo(_: HandlerArgs) -> None:
    _[HEAP]["client"].put(_[ARG0])


def stop_server(server: Any) -> None:
    poe_kernel.post(server, "shutdown")
    poe_kernel.run()


def test_new_runs_started_and_returns_the_listener_session_id() -> None:
    seen: list[Any] = []

    def started(_: HandlerArgs) -> None:
        seen.append((_[SESSION].ID, _[ARG0], _[ARG1], _[HEAP]["listener"].getsockname()[1]))

    server = ServerTCP(**LOCAL, ClientInput=echo, Started=started, ListenerArgs=["a", 2])
    assert isinstance(server, int)
    assert seen == [(int(server), "a", 2, server.port)], "Started ran inside new()"
    assert poe_kernel.post(server, "shutdown"), "the ID is a destination"
    poe_kernel.run()


def test_a_connection_in_order_with_every_callback_and_heap_key() -> None:
    trace: list[Any] = []

    def connected(_: HandlerArgs) -> None:
        heap = _[HEAP]
        trace.append(("connected", _[ARG0], _[ARG1], heap["remote_ip"], heap["connected"]))
        trace.append(("heap", heap["shutdown"], heap["shutdown_on_error"]))
        heap["client"].put("hello")

    def client_input(_: HandlerArgs) -> None:
        trace.append(("input", _[ARG0], _[ARG1] == _[HEAP]["client"].ID, _[STATE]))
        if _[ARG0] == "quit":
            _[HEAP]["client"].put("bye")
            _[KERNEL].yield_("shutdown")
        else:
            _[HEAP]["client"].put(_[ARG0].upper())

    server = ServerTCP(
        **LOCAL,
        Alias="srv",
        ClientArgs=["x", "y"],
        ClientConnected=connected,
        ClientInput=client_input,
        ClientFlushed=lambda _: trace.append(("flushed", _[HEAP]["shutdown"])),
        ClientDisconnected=lambda _: trace.append(("disconnected", _[HEAP]["connected"])),
        ClientError=lambda _: trace.append(("error", *_[ARG0 : ARG2 + 1])),
        Stopped=lambda _: trace.append(("stopped",)),
    )
    peer = Peer(server.port)
    assert peer.wait_lines(1) == [b"hello"]
    local_port = peer.sock.getsockname()[1]
    peer.send(b"abc\r\nquit\r\n")
    peer.wait_eof()
    assert peer.lines() == [b"hello", b"ABC", b"bye"]
    poe_kernel.post("srv", "shutdown")
    poe_kernel.run()
    assert trace[:2] == [("connected", "x", "y", "127.0.0.1", True), ("heap", False, True)]
    inputs = [t for t in trace if t[0] == "input"]
    assert inputs == [
        ("input", "abc", True, "tcp_server_got_input"),
        ("input", "quit", True, "tcp_server_got_input"),
    ]
    assert trace[-2:] == [("disconnected", False), ("stopped",)]
    assert ("flushed", False) in trace
    assert not [t for t in trace if t[0] == "error"]
    assert local_port > 0


def test_remote_port_and_client_wheel_are_in_the_heap() -> None:
    seen: dict[str, Any] = {}

    def connected(_: HandlerArgs) -> None:
        heap = _[HEAP]
        seen.update(ip=heap["remote_ip"], port=heap["remote_port"], client=type(heap["client"]))

    server = ServerTCP(**LOCAL, ClientInput=echo, ClientConnected=connected)
    peer = Peer(server.port)
    run_until(lambda: seen, what="ClientConnected")
    assert seen == {"ip": "127.0.0.1", "port": peer.sock.getsockname()[1], "client": ReadWrite}
    peer.close()
    stop_server(server)


def test_the_client_closing_is_client_error_read_0_then_disconnected() -> None:
    trace: list[Any] = []
    server = ServerTCP(
        **LOCAL,
        ClientInput=echo,
        ClientError=lambda _: trace.append(("error", *_[ARG0 : ARG2 + 1])),
        ClientDisconnected=lambda _: trace.append(("disconnected",)),
    )
    peer = Peer(server.port)
    run_until(lambda: len(poe_kernel.introspection.sessions()) > 2, what="the connection")
    peer.close()
    run_until(lambda: ("disconnected",) in trace, what="ClientDisconnected")
    assert trace == [("error", "read", 0, ""), ("disconnected",)]
    stop_server(server)


def test_client_shutdown_on_error_off_leaves_the_connection_to_the_program() -> None:
    trace: list[Any] = []

    def error(_: HandlerArgs) -> None:
        trace.append(("error", _[ARG0], _[ARG1], _[HEAP]["shutdown_on_error"]))
        _[KERNEL].delay("later", 0.05)

    def later(_: HandlerArgs) -> None:
        trace.append(("later", _[HEAP]["connected"]))
        del _[HEAP]["client"]  # the program ends it itself

    server = ServerTCP(
        **LOCAL,
        ClientInput=echo,
        ClientShutdownOnError=False,
        ClientError=error,
        ClientDisconnected=lambda _: trace.append(("disconnected",)),
        InlineStates={"later": later},
    )
    peer = Peer(server.port)
    run_until(lambda: len(poe_kernel.introspection.sessions()) > 2, what="the connection")
    peer.close()
    run_until(lambda: ("disconnected",) in trace, what="ClientDisconnected")
    assert trace == [("error", "read", 0, False), ("later", True), ("disconnected",)]
    stop_server(server)


def test_shutdown_waits_for_the_output_to_be_flushed() -> None:
    big = "x" * 200_000

    def client_input(_: HandlerArgs) -> None:
        _[HEAP]["client"].put(*([big] * 10))
        _[KERNEL].yield_("shutdown")

    server = ServerTCP(**LOCAL, ClientInput=client_input, ClientBackpressure=False)
    peer = Peer(server.port)
    peer.send(b"go\r\n")
    peer.wait_eof(10)
    assert len(peer.lines()) == 10 and all(len(line) == len(big) for line in peer.lines())
    stop_server(server)


def test_concurrency_pauses_accepting_until_a_connection_ends() -> None:
    server = ServerTCP(**LOCAL, Alias="c", ClientInput=echo, Concurrency=1)
    first = Peer(server.port)
    first.send(b"1\r\n")
    assert first.wait_lines(1) == [b"1"]
    second = Peer(server.port)  # completes in the backlog
    second.send(b"2\r\n")
    ticks = [0]
    run_until(lambda: ticks.__setitem__(0, ticks[0] + 1) or ticks[0] > 10, what="slices")
    second.pump()
    assert second.data == b"", "not accepted while one connection is open"
    first.close()
    assert second.wait_lines(1) == [b"2"], "accepted once the first one's session stopped"
    second.close()
    stop_server("c")


def test_concurrency_zero_accepts_nothing_until_set_concurrency() -> None:
    connections: list[int] = []
    server = ServerTCP(
        **LOCAL,
        Alias="z",
        ClientInput=echo,
        Concurrency=0,
        ClientConnected=lambda _: connections.append(1),
    )
    peer = Peer(server.port)
    ticks = [0]
    run_until(lambda: ticks.__setitem__(0, ticks[0] + 1) or ticks[0] > 10, what="slices")
    assert connections == [], "POE accepts one first; its documentation says none"
    poe_kernel.post("z", "set_concurrency", -1)
    run_until(lambda: connections, what="accepted after set_concurrency")
    peer.close()
    stop_server("z")


def test_listener_shutdown_lets_open_connections_finish() -> None:
    server = ServerTCP(**LOCAL, Alias="s", ClientInput=echo)
    port = server.port
    peer = Peer(port)
    peer.send(b"a\r\n")
    peer.wait_lines(1)
    poe_kernel.post("s", "shutdown")
    run_until(lambda: server.session is not None and "listener" not in server.session.heap)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    peer.send(b"b\r\n")
    assert peer.wait_lines(2) == [b"a", b"b"], "the open connection still works"
    peer.close()
    poe_kernel.run()


def test_acceptor_gets_socketfactorys_arguments() -> None:
    got: list[Any] = []

    def acceptor(_: HandlerArgs) -> None:
        sock, address, port, wheel_id = _[ARG0 : ARG0 + 4]
        got.append((address, port, wheel_id == _[HEAP]["listener"].ID, _[HEAP]["connections"]))
        sock.sendall(b"mine\r\n")
        sock.close()
        _[KERNEL].yield_("disconnected")  # the program's own, as POE asks

    server = ServerTCP(**LOCAL, Acceptor=acceptor)
    peer = Peer(server.port)
    peer.wait_eof()
    assert peer.lines() == [b"mine"]
    assert got == [("127.0.0.1", peer.sock.getsockname()[1], True, 1)]
    stop_server(server)


def test_client_filter_forms_each_connection_its_own_filter() -> None:
    proto = Line(Literal="|")
    for spec in (proto, Line, (Line, {"Literal": "|"})):
        server = ServerTCP(**LOCAL, ClientInput=echo, ClientFilter=spec)
        peer = Peer(server.port)
        if spec is Line:
            peer.send(b"a\nb\n")
            assert peer.wait_data(lambda d: d.count(b"\r\n") == 2) == b"a\r\nb\r\n"
        else:
            peer.send(b"a|b|")
            assert peer.wait_data(lambda d: d == b"a|b|") == b"a|b|"
        peer.close()
        stop_server(server)
    assert proto.get_pending() is None, "the prototype was cloned, never used"


def test_client_input_and_output_filters() -> None:
    server = ServerTCP(
        **LOCAL,
        ClientInput=lambda _: _[HEAP]["client"].put(f"<{_[ARG0]}>".encode()),
        ClientInputFilter=Line,
        ClientOutputFilter=Stream(),
    )
    peer = Peer(server.port)
    peer.send(b"a\nb\n")
    assert peer.wait_data(lambda d: len(d) >= 6) == b"<a><b>"
    peer.close()
    stop_server(server)


def test_client_pre_connect_refuses_or_replaces_the_socket() -> None:
    seen: list[Any] = []

    def pre_connect(_: HandlerArgs) -> Any:
        seen.append((_[HEAP]["remote_ip"], "client" in _[HEAP]))
        if len(seen) == 1:
            return None  # refused
        sock = _[ARG0]
        sock.sendall(b"conditioned\r\n")
        return sock

    server = ServerTCP(
        **LOCAL,
        ClientInput=echo,
        ClientPreConnect=pre_connect,
        ClientConnected=lambda _: seen.append("connected"),
    )
    refused = Peer(server.port)
    refused.wait_eof()
    assert refused.data == b"" and seen == [("127.0.0.1", False)]
    accepted = Peer(server.port)
    accepted.send(b"x\r\n")
    assert accepted.wait_lines(2) == [b"conditioned", b"x"]
    assert seen[1:] == [("127.0.0.1", False), "connected"]
    accepted.close()
    refused.close()
    stop_server(server)


class Greeter:
    def greet(self, _: HandlerArgs) -> None:
        _[HEAP]["client"].put(f"object {_[OBJECT] is self}")


class Package:
    @classmethod
    def hello(cls, _: HandlerArgs) -> None:
        _[HEAP]["client"].put("package")


class Counted(Session):
    made = 0

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> Session | None:
        cls.made += 1
        return super().create(*args, **kwargs)


def test_inline_object_package_states_session_params_and_type() -> None:
    greeter = Greeter()
    options: list[Any] = []

    def client_input(_: HandlerArgs) -> None:
        options.append(_[SESSION].options)
        for event in ("inline", "greet", "hello"):
            _[KERNEL].yield_(event)

    server = ServerTCP(
        **LOCAL,
        ClientInput=client_input,
        InlineStates={"inline": lambda _: _[HEAP]["client"].put("inline")},
        ObjectStates=[(greeter, ["greet"])],
        PackageStates=[(Package, {"hello": "hello"})],
        SessionParams=["options", {"trace": 1}],
        SessionType=Counted,
    )
    before = Counted.made
    peer = Peer(server.port)
    peer.send(b"go\r\n")
    assert peer.wait_lines(3) == [b"inline", b"object True", b"package"]
    assert options == [{"trace": 1}]
    assert Counted.made == before + 1, "the connection's session is a SessionType"
    peer.close()
    stop_server(server)


def test_the_quick_path_gives_each_connection_its_own_copy_of_the_states() -> None:
    # Without ObjectStates, PackageStates or SessionType, every connection's
    # session starts from one table of states registered once for the server
    # (Session.create_registered): InlineStates and SessionParams are there,
    # OBJECT is None, and a state one connection adds is not another's.
    seen: list[Any] = []

    def client_input(_: HandlerArgs) -> None:
        seen.append((_[OBJECT], _[SESSION].options, _[ARG0]))
        kernel = _[KERNEL]
        if _[ARG0] == "add":
            kernel.state("extra", lambda _: _[HEAP]["client"].put("extra"))
        kernel.yield_("extra")
        kernel.yield_("after")

    server = ServerTCP(
        **LOCAL,
        ClientInput=client_input,
        InlineStates={"after": lambda _: _[HEAP]["client"].put("after")},
        SessionParams={"options": {"trace": 0}},
    )
    first = Peer(server.port)
    first.send(b"add\r\n")
    assert first.wait_lines(2) == [b"extra", b"after"]
    second = Peer(server.port)
    second.send(b"probe\r\n")
    assert second.wait_lines(1) == [b"after"]
    first.send(b"again\r\n")
    assert first.wait_lines(4)[2:] == [b"extra", b"after"], "the first keeps its own state"
    second.pump()
    assert second.lines() == [b"after"], "the state the first added is not the second's"
    assert [entry[0] for entry in seen] == [None, None, None]
    assert all(entry[1] == {"trace": 0} for entry in seen)
    first.close()
    second.close()
    stop_server(server)


def test_ipv6_unix_and_hostname(tmp_path: Path) -> None:
    server = ServerTCP(Address="::1", Domain=socket.AF_INET6, ClientInput=echo)
    peer = Peer(server.port, host="::1", family=socket.AF_INET6)
    peer.send(b"six\r\n")
    assert peer.wait_lines(1) == [b"six"]
    peer.close()
    stop_server(server)

    path = str(tmp_path / "srv.sock")
    ips: list[Any] = []
    server = ServerTCP(
        Address=path,
        Domain=socket.AF_UNIX,
        ClientInput=echo,
        ClientConnected=lambda _: ips.append((_[HEAP]["remote_ip"], _[HEAP]["remote_port"])),
    )
    assert server.port is None and server.address == path
    peer = Peer(0, host=path, family=socket.AF_UNIX)
    peer.send(b"unix\r\n")
    assert peer.wait_lines(1) == [b"unix"]
    assert ips == [("LOCAL", None)], "POE's remote_ip for UNIX sockets"
    peer.close()
    stop_server(server)

    server = ServerTCP(Hostname="localhost", ClientInput=echo)
    assert server.address[0] == "127.0.0.1"
    stop_server(server)


def test_a_port_in_use_is_error_bind_then_stopped(caplog: pytest.LogCaptureFixture) -> None:
    trace: list[Any] = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ServerTCP(
            **LOCAL,
            Port=port,
            ClientInput=echo,
            Error=lambda _: (trace.append(_[ARG0 : ARG2 + 1]), _[HEAP].pop("listener")),
            Stopped=lambda _: trace.append("stopped"),
        )
        poe_kernel.run()
        assert trace == [("bind", errno.EADDRINUSE, "Address already in use"), "stopped"]
        with caplog.at_level(logging.WARNING, "kernelish.components.server_tcp"):
            ServerTCP(**LOCAL, Port=port, ClientInput=echo)  # the default Error
            poe_kernel.run()
    assert "got bind error 98 (Address already in use)" in caplog.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "needs either an Acceptor or a ClientInput but not both"),
        ({"ClientInput": echo, "Acceptor": echo}, "but not both"),
        ({"Acceptor": echo, "ClientConnected": echo}, "ClientConnected not permitted"),
        ({"ClientInput": echo, "Port": 70000}, "Port must be 0..65535"),
        ({"ClientInput": echo, "Concurrency": -2}, "Concurrency"),
        ({"ClientInput": echo, "ClientInputFilter": Line}, "must be used with ClientOutputFilter"),
        (
            {"ClientInput": echo, "ClientFilter": Line, "ClientInputFilter": Line,
             "ClientOutputFilter": Line},
            "ClientFilter cannot be combined",
        ),
        ({"ClientInput": echo, "ClientFilter": "POE::Filter::Line"}, "ClientFilter must be"),
        ({"ClientInput": echo, "ClientFilter": (Line, {"Bogus": 1})}, "ClientFilter: Line"),
        ({"ClientInput": echo, "HighMark": 10}, "require each other"),
        ({"ClientInput": echo, "HighMark": 10, "LowMark": 20}, "must be below HighMark"),
        ({"ClientInput": echo, "ClientHigh": echo}, "require HighMark and LowMark"),
        ({"ClientInput": echo, "ClientInput2": echo}, "unknown parameter 'ClientInput2'"),
        ({"ClientInput": echo, "client_input": echo}, "given twice"),
        ({"ClientInput": 42}, "ClientInput must be"),
        ({"ClientInput": echo, "InlineStates": {"shutdown": echo}}, "may not be replaced"),
        ({"ClientInput": echo, "ObjectStates": [(Greeter(), ["_start"])]}, "_start"),
        ({"ClientInput": echo, "SessionParams": ["heap", {}]}, "may only give 'options'"),
        ({"ClientInput": echo, "Domain": 99}, "Domain must be"),
        ({"ClientInput": echo, "Domain": socket.AF_UNIX}, "needs the socket's path"),
        ({"ClientInput": echo, "Hostname": "no-such-host.invalid"}, "Hostname"),
        ({"ClientInput": echo, "ClientIdleTimeout": 0}, "ClientIdleTimeout"),
        ({"ClientInput": echo, "SSLContext": "yes"}, "SSLContext must be"),
    ],
)  # fmt: skip
def test_bad_parameters_are_refused_naming_them(params: dict[str, Any], message: str) -> None:
    before = len(poe_kernel.introspection.sessions())
    with pytest.raises(ParameterError, match=message):
        ServerTCP(**params)
    assert len(poe_kernel.introspection.sessions()) == before, "no session was created"


def test_snake_case_parameters() -> None:
    server = ServerTCP(address="127.0.0.1", client_input=echo, alias="snake")
    peer = Peer(server.port)
    peer.send(b"s\r\n")
    assert peer.wait_lines(1) == [b"s"]
    peer.close()
    stop_server("snake")


# -- bad input: each closes its own connection, the listener serves on ------------


def still_serves(port: int) -> None:
    peer = Peer(port)
    peer.send(b"still\r\n")
    assert peer.wait_lines(1) == [b"still"]
    peer.close()


def test_idle_client_is_timed_out() -> None:
    errors: list[Any] = []
    server = ServerTCP(
        **LOCAL,
        ClientInput=echo,
        ClientIdleTimeout=0.2,
        ClientError=lambda _: errors.append(_[ARG0 : ARG1 + 1]),
    )
    silent = Peer(server.port)
    silent.wait_eof(3)
    assert errors == [("read", errno.ETIMEDOUT)]
    still_serves(server.port)
    silent.close()
    stop_server(server)


def test_a_client_flooding_without_reading_stops_being_read() -> None:
    sizes: list[int] = []

    def client_input(_: HandlerArgs) -> None:
        client = _[HEAP]["client"]
        if _[ARG0].startswith("y"):
            client.put(_[ARG0] * 20)
            sizes.append(client.get_driver_out_octets())
        else:
            client.put(_[ARG0])

    server = ServerTCP(**LOCAL, ClientInput=client_input, HighMark=64_000, LowMark=16_000)
    flood = socket.create_connection(("127.0.0.1", server.port))
    flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    flood.setblocking(False)
    line = b"y" * 1000 + b"\r\n"
    seen: list[int] = []

    def stalled() -> bool:
        try:
            while True:
                flood.send(line * 64)
        except BlockingIOError:
            pass
        seen.append(len(sizes))
        return len(seen) > 40 and seen[-1] == seen[-40] and seen[-1] > 0

    run_until(stalled, 10, "the server to stop reading the flood")
    assert max(sizes) < 64_000 + 20 * 1001, "output bounded by HighMark plus one put"
    still_serves(server.port)
    flood.close()
    stop_server(server)


def test_a_line_over_the_filters_maximum_closes_that_connection() -> None:
    errors: list[Any] = []
    server = ServerTCP(
        **LOCAL,
        ClientInput=echo,
        ClientFilter=(Line, {"MaxLength": 100}),
        ClientError=lambda _: errors.append(_[ARG0 : ARG1 + 1]),
    )
    long = Peer(server.port)
    long.send(b"z" * 5000)
    long.wait_eof()
    assert errors == [("read", errno.EMSGSIZE)]
    still_serves(server.port)
    long.close()
    stop_server(server)


def test_a_client_that_resets_mid_write() -> None:
    errors: list[Any] = []
    server = ServerTCP(
        **LOCAL,
        ClientInput=lambda _: _[HEAP]["client"].put(
            "w" * 4_000_000 if _[ARG0] == "go" else _[ARG0]
        ),
        ClientError=lambda _: errors.append(_[ARG0 : ARG1 + 1]),
        ClientBackpressure=False,
    )
    rude = Peer(server.port)
    rude.send(b"go\r\n")
    rude.wait_data(bool)  # the write is under way
    rude.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    rude.close()  # RST
    run_until(lambda: errors, what="ClientError")
    assert errors[0][1] in (errno.ECONNRESET, errno.EPIPE)
    still_serves(server.port)
    stop_server(server)


def test_client_input_that_raises_closes_only_its_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    trace: list[Any] = []

    def client_input(_: HandlerArgs) -> None:
        if _[ARG0] == "boom":
            raise RuntimeError("boom")
        _[HEAP]["client"].put(_[ARG0])

    server = ServerTCP(
        **LOCAL,
        ClientInput=client_input,
        ClientDisconnected=lambda _: trace.append(_[SESSION].ID),
    )
    other = Peer(server.port)
    other.send(b"before\r\n")
    other.wait_lines(1)
    with caplog.at_level(logging.ERROR, "kernelish.components.server_tcp"):
        bad = Peer(server.port)
        bad.send(b"boom\r\nlost\r\n")
        bad.wait_eof()
    assert bad.data == b"", "the record after the failing one is not handled"
    assert "RuntimeError: boom in " in caplog.text and "closing the connection" in caplog.text
    assert "Traceback" in caplog.text
    assert len(trace) == 1, "ClientDisconnected for the closed connection"
    other.send(b"after\r\n")
    assert other.wait_lines(2) == [b"before", b"after"], "the other connection goes on"
    still_serves(server.port)
    other.close()
    stop_server(server)


def test_an_error_in_the_listener_is_poes_die() -> None:
    def acceptor(_: HandlerArgs) -> None:
        _[ARG0].close()
        raise ValueError("listener bug")

    heaps: list[Any] = []
    server = ServerTCP(**LOCAL, Acceptor=acceptor, Started=lambda _: heaps.append(_[HEAP]))
    peer = Peer(server.port)
    with pytest.raises(ValueError, match="listener bug") as raised:
        poe_kernel.run()  # POE: an unhandled DIE stops every session, run() dies
    peer.close()
    traceback.clear_frames(raised.value.__traceback__)  # they hold the listener
    heaps[0].pop("listener")


def test_client_high_and_low_with_the_marks() -> None:
    marks: list[str] = []
    big = "h" * 50_000

    def client_input(_: HandlerArgs) -> None:
        _[HEAP]["client"].put(*([big] * 60))

    server = ServerTCP(
        **LOCAL,
        ClientInput=client_input,
        HighMark=100_000,
        LowMark=10_000,
        ClientHigh=lambda _: marks.append("high"),
        ClientLow=lambda _: marks.append("low"),
    )
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before the handshake
    slow.connect(("127.0.0.1", server.port))
    slow.sendall(b"go\r\n")
    run_until(lambda: marks == ["high"], what="ClientHigh")
    slow.setblocking(False)
    got = [0]

    def drain() -> bool:
        try:
            while chunk := slow.recv(65536):
                got[0] += len(chunk)
        except BlockingIOError:
            pass
        return marks == ["high", "low"]

    run_until(drain, what="ClientLow once the client reads")
    slow.close()
    stop_server(server)


def test_accept_batch_is_handed_to_the_listener() -> None:
    connected: list[int] = []
    server = ServerTCP(
        **LOCAL,
        ClientInput=echo,
        AcceptBatch=1,
        ClientConnected=lambda _: connected.append(1),
    )
    peers = [Peer(server.port) for _ in range(3)]
    counts: list[int] = []

    def three() -> bool:
        counts.append(len(connected))
        return len(connected) == 3

    run_until(three, what="three connections")
    assert 1 in counts and 2 in counts, f"one accept per readiness: {counts}"
    for peer in peers:
        peer.close()
    stop_server(server)
