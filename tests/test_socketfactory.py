"""SocketFactory: listening, accepting, connecting, failures (POE-SEMANTICS 7.1)."""

from __future__ import annotations

import errno
import functools
import socket
from pathlib import Path
from typing import Any

import pytest

from kernelish import ARG0, HEAP, HandlerArgs, poe_kernel
from kernelish._params import ParameterError
from kernelish.wheels import SocketFactory, reuse_enabled

from ._wheels import run_until, session


def listener_session(log: list[tuple[Any, ...]], **params: Any) -> Any:
    """A session holding a listener; SuccessEvent closes accepted sockets."""

    def start(_: HandlerArgs) -> None:
        _[HEAP]["factory"] = SocketFactory(SuccessEvent="accepted", FailureEvent="failed", **params)
        log.append(("constructed", _[HEAP]["factory"].ID))

    def accepted(_: HandlerArgs) -> None:
        sock = _[ARG0]
        log.append(("accepted", type(sock).__name__, *_.args[1:]))
        assert sock.gettimeout() == 0.0 and not sock.get_inheritable()
        sock.close()

    def failed(_: HandlerArgs) -> None:
        log.append(("failed", *_.args))
        _[HEAP].pop("factory", None)

    return session(_start=start, accepted=accepted, failed=failed)


def test_accepts_and_reports_peer_address_port_and_wheel_id() -> None:
    log: list[tuple[Any, ...]] = []
    s = listener_session(log, BindAddress="127.0.0.1", BindPort=0, Reuse="yes")
    factory = s.heap["factory"]
    host, port = factory.getsockname()
    assert host == "127.0.0.1" and port > 0
    with socket.create_connection(("127.0.0.1", port)) as client:
        run_until(lambda: len(log) == 2, what="SuccessEvent")
        assert log[1] == ("accepted", "socket", "127.0.0.1", client.getsockname()[1], factory.ID)
    del s.heap["factory"], factory
    poe_kernel.run()


def test_bind_failure_arrives_later_as_failure_event() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log: list[tuple[Any, ...]] = []
        s = listener_session(log, BindAddress="127.0.0.1", BindPort=port)
        wheel_id = log[0][1]
        assert log == [("constructed", wheel_id)]  # the constructor returned first
        assert s.heap["factory"].getsockname() is None
        poe_kernel.run()
    assert log[1][:3] == ("failed", "bind", errno.EADDRINUSE)
    assert log[1][3] == "Address already in use" and log[1][4] == wheel_id


def test_pause_accept_leaves_connections_in_the_backlog() -> None:
    log: list[tuple[Any, ...]] = []
    s = listener_session(log, BindAddress="127.0.0.1", BindPort=0)
    factory = s.heap["factory"]
    port = factory.getsockname()[1]
    poe_kernel.run_as(s, factory.pause_accept)
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        ticks = [0]
        run_until(lambda: ticks.__setitem__(0, ticks[0] + 1) or ticks[0] > 10, what="slices")
        assert [e[0] for e in log] == ["constructed"]  # TCP connected, nothing accepted
        assert s._fds  # a paused listener still holds the session
        factory.resume_accept()
        run_until(lambda: len(log) == 4, what="three SuccessEvents")
        assert [e[0] for e in log[1:]] == ["accepted"] * 3
    finally:
        for c in clients:
            c.close()
    del s.heap["factory"], factory
    poe_kernel.run()


def test_two_listeners_one_paused_one_accepting() -> None:
    """Listeners' exclusive watches stand in their own epoll set; a paused one
    must not sit there while another is waited on (KernelSelector)."""
    log_a: list[tuple[Any, ...]] = []
    log_b: list[tuple[Any, ...]] = []
    a = listener_session(log_a, BindAddress="127.0.0.1", BindPort=0)
    b = listener_session(log_b, BindAddress="127.0.0.1", BindPort=0)
    fa, fb = a.heap["factory"], b.heap["factory"]
    fa.pause_accept()
    clients = [socket.create_connection(("127.0.0.1", f.getsockname()[1])) for f in (fa, fb, fb)]
    try:
        run_until(lambda: len(log_b) == 3, what="B's two SuccessEvents")
        ticks = [0]
        run_until(lambda: ticks.__setitem__(0, ticks[0] + 1) or ticks[0] > 10, what="slices")
        assert [e[0] for e in log_a] == ["constructed"], "A is paused"
        fb.pause_accept()
        fa.resume_accept()
        run_until(lambda: len(log_a) == 2, what="A's SuccessEvent once resumed")
        clients.append(socket.create_connection(("127.0.0.1", fb.getsockname()[1])))
        fb.resume_accept()
        run_until(lambda: len(log_b) == 4, what="B's third SuccessEvent once resumed")
    finally:
        for c in clients:
            c.close()
    del a.heap["factory"], b.heap["factory"], fa, fb
    poe_kernel.run()


@pytest.mark.parametrize(("batch", "per_slice"), [(1, [1, 1, 1]), (16, [3])])
def test_accept_batch_is_the_most_accepts_per_readiness(batch: int, per_slice: list[int]) -> None:
    """Three connections wait in the backlog: with AcceptBatch=1 (POE's own
    behaviour) each timeslice's readiness accepts one; with the default
    batch one readiness accepts all three."""
    log: list[tuple[Any, ...]] = []
    s = listener_session(log, BindAddress="127.0.0.1", AcceptBatch=batch)
    port = s.heap["factory"].getsockname()[1]
    poe_kernel.run_one_timeslice()  # the session's GC marker: nothing to accept yet
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    accepted = []
    try:
        for _i in per_slice:
            before = len(log)
            poe_kernel.run_one_timeslice()  # one poll: the listener is ready
            accepted.append(len(log) - before)
    finally:
        for c in clients:
            c.close()
    assert accepted == per_slice
    del s.heap["factory"]
    poe_kernel.run()


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1")
    log: list[tuple[Any, ...]] = []
    s = listener_session(log, BindAddress="::1", BindPort=0)
    port = s.heap["factory"].getsockname()[1]
    with socket.create_connection(("::1", port)) as client:
        run_until(lambda: len(log) == 2, what="SuccessEvent")
        assert log[1][2:4] == ("::1", client.getsockname()[1])
    del s.heap["factory"]
    poe_kernel.run()


def test_unix_socket_listener(tmp_path: Path) -> None:
    path = str(tmp_path / "sock")
    log: list[tuple[Any, ...]] = []
    s = listener_session(log, SocketDomain=socket.AF_UNIX, BindAddress=path)
    assert s.heap["factory"].getsockname() == path
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(path)
        run_until(lambda: len(log) == 2, what="SuccessEvent")
    assert log[1][2:4] == (None, None)
    del s.heap["factory"]
    poe_kernel.run()
    Path(path).unlink()


def accepted_twice(log: list[tuple[Any, ...]]) -> bool:
    return len(log) == 2


def test_adopting_an_inherited_listening_socket_by_handle_and_by_fd() -> None:
    for as_fd in (False, True):
        raw = socket.socket()
        raw.bind(("127.0.0.1", 0))
        raw.listen()
        port = raw.getsockname()[1]
        handle: Any = raw.detach() if as_fd else raw
        log: list[tuple[Any, ...]] = []
        s = listener_session(log, Handle=handle)
        with socket.create_connection(("127.0.0.1", port)):
            run_until(functools.partial(accepted_twice, log), what="SuccessEvent")
        del s.heap["factory"]
        poe_kernel.run()
        if not as_fd:
            assert raw.fileno() >= 0  # the test still holds it: left open
            raw.close()


def test_connecting_success_and_refusal() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        closed_port = socket.socket()
        closed_port.bind(("127.0.0.1", 0))
        refused = closed_port.getsockname()[1]
        closed_port.close()
        log: list[tuple[Any, ...]] = []

        def start(_: HandlerArgs) -> None:
            for p in (port, refused):
                f = SocketFactory(
                    RemoteAddress="127.0.0.1",
                    RemotePort=p,
                    SuccessEvent="connected",
                    FailureEvent="failed",
                )
                _[HEAP][f.ID] = f

        def connected(_: HandlerArgs) -> None:
            sock, host, p, wid = _.args
            log.append(("connected", host, p))
            sock.close()
            del _[HEAP][wid]

        def failed(_: HandlerArgs) -> None:
            log.append(("failed", _.args[0], _.args[1]))
            del _[HEAP][_.args[3]]

        session(_start=start, connected=connected, failed=failed)
        poe_kernel.run()
    assert sorted(log) == [
        ("connected", "127.0.0.1", port),
        ("failed", "connect", errno.ECONNREFUSED),
    ]


def test_event_renames_success_event() -> None:
    log: list[tuple[Any, ...]] = []
    s = listener_session(log, BindAddress="127.0.0.1")
    s.heap["factory"].event(SuccessEvent="renamed")

    def renamed(_: HandlerArgs) -> None:
        log.append(("renamed",))
        _[ARG0].close()

    s._states["renamed"] = (renamed, None)
    with socket.create_connection(("127.0.0.1", s.heap["factory"].getsockname()[1])):
        run_until(lambda: len(log) == 2, what="renamed SuccessEvent")
    assert log[1] == ("renamed",)
    del s.heap["factory"]
    poe_kernel.run()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"SuccessEvent": "a", "FailureEvent": "b", "BindPrt": 1}, "BindPrt"),
        ({"SuccessEvent": "a", "FailureEvent": "b", "ListenQueue": "many"}, "ListenQueue"),
        ({"FailureEvent": "b"}, "SuccessEvent"),
    ],
)
def test_bad_parameters_fail_at_construction(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ParameterError, match=name):
        SocketFactory(**kwargs)


def test_snake_case_parameters() -> None:
    log: list[str] = []

    def start(_: HandlerArgs) -> None:
        _[HEAP]["f"] = SocketFactory(
            bind_address="127.0.0.1", bind_port=0, success_event="s", failure_event="f"
        )
        log.append(_[HEAP]["f"].getsockname()[0])
        del _[HEAP]["f"]

    session(_start=start, s=lambda _: None, f=lambda _: None)
    poe_kernel.run()
    assert log == ["127.0.0.1"]


@pytest.mark.parametrize(
    ("value", "enabled"),
    [("yes", True), ("ON", True), (1, True), ("1", True), (True, True), ("true", False),
     ("no", False), (0, False), ("0", False), (None, False), (False, False)],
)  # fmt: skip
def test_reuse_follows_poes_rule(value: Any, enabled: bool) -> None:
    assert reuse_enabled(value) is enabled


def _emfile_child(port_w: int, report_w: int) -> None:
    """In a forked child: a listener that runs out of descriptors; its
    FailureEvent handler pauses it, and resumes it only later."""
    import json
    import os
    import resource
    import time

    log: list[Any] = []
    filler: list[int] = []
    start = time.monotonic()

    def begin(_: HandlerArgs) -> None:
        factory = SocketFactory(
            BindAddress="127.0.0.1", SuccessEvent="accepted", FailureEvent="failed"
        )
        _[HEAP]["factory"] = factory
        os.write(port_w, str(factory.getsockname()[1]).encode())
        os.close(port_w)
        used = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (used + 8, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        )
        try:
            while True:
                filler.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass

    def failed(_: HandlerArgs) -> None:
        log.append(["failed", _[ARG0], _.args[1], round(time.monotonic() - start, 2)])
        if len(log) == 1:
            kernel = _.kernel
            kernel.delay("pause", 0.05)  # the program pauses it during the backoff
            kernel.delay("free", 0.2)  # descriptors free again
            kernel.delay("resume", 1.2)  # and the program resumes it, later

    def free(_: HandlerArgs) -> None:
        while filler:
            os.close(filler.pop())

    def accepted(_: HandlerArgs) -> None:
        log.append(["accepted", round(time.monotonic() - start, 2)])
        _[ARG0].close()
        del _[HEAP]["factory"]

    session(
        _start=begin, failed=failed, free=free, accepted=accepted,
        pause=lambda _: _[HEAP]["factory"].pause_accept(),
        resume=lambda _: _[HEAP]["factory"].resume_accept(),
    )  # fmt: skip
    poe_kernel.run()
    os.write(report_w, json.dumps(log).encode())


def test_emfile_backs_off_once_and_a_paused_listener_stays_paused() -> None:
    import json
    import os

    port_r, port_w = os.pipe()
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(port_r)
            os.close(report_r)
            _emfile_child(port_w, report_w)
        finally:
            os._exit(0)
    os.close(port_w)
    os.close(report_w)
    try:
        port = int(os.read(port_r, 16))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.settimeout(5)
            data = b""
            while chunk := os.read(report_r, 4096):
                data += chunk
    finally:
        os.close(port_r)
        os.close(report_r)
        os.waitpid(pid, 0)
    log = json.loads(data)
    assert len(log) == 2, f"one FailureEvent per burst, not {len(log) - 1}: {log[:3]}"
    assert log[0][:3] == ["failed", "accept", errno.EMFILE], "one FailureEvent, the listener kept"
    assert log[1][0] == "accepted"
    assert log[1][1] >= 1.2, "not before the program resumed it, backoff over or not"
