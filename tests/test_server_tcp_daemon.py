"""ServerTCP(Daemon=True) in-process: the listener accepts nothing until the
Daemon's mode is known, then serves (a Daemon without children); its
``daemon_shutdown`` closes the listener and drains the connections.  The
pre-forking and post-forking pools are tested black-box with
``examples/server_tcp_*.py`` (tests/test_examples.py)."""

from __future__ import annotations

from typing import Any

from kernelish import ARG0, HEAP, HandlerArgs, poe_kernel
from kernelish.components.daemon import Daemon, DaemonComponent, pool_mode
from kernelish.components.server_tcp import ServerTCP

from ._tcp import Peer
from ._wheels import run_until


def echo(_: HandlerArgs) -> None:
    _[HEAP]["client"].put(_[ARG0])


def test_no_daemon_no_mode() -> None:
    assert pool_mode() is None


def test_accepts_once_the_daemon_runs_and_drains_on_its_shutdown() -> None:
    connected: list[Any] = []
    server = ServerTCP(
        Address="127.0.0.1",
        Daemon=True,
        ClientInput=echo,
        ClientConnected=lambda _: connected.append(_[HEAP]["remote_port"]),
    )
    peer = Peer(server.port)
    ticks = [0]
    run_until(lambda: ticks.__setitem__(0, ticks[0] + 1) or ticks[0] > 10, what="slices")
    assert connected == [], "no Daemon yet: the listener does not accept"
    DaemonComponent.new(alias="Daemon", detach=False).create_session()
    assert pool_mode() == "none"
    run_until(lambda: connected, what="accepted once the Daemon started")
    peer.send(b"hi\r\n")
    assert peer.wait_lines(1) == [b"hi"]
    Daemon.shutdown()  # daemon_shutdown: the listener closes, idle connections too
    peer.wait_eof()
    poe_kernel.run()
    assert pool_mode() is None, "the Daemon is gone"
