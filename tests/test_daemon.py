"""The Daemon component in-process: real forks, real signals, real /proc.

Children forked by the daemon run the rest of the kernel loop; each test ends
a child that returns from ``run()`` with ``os._exit`` so it never returns into
pytest.  Results travel from children to the parent over a pipe.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from kernelish import ARG0, ARG1, HEAP, KERNEL, Session, poe_kernel
from kernelish.components.daemon import Daemon, DaemonComponent, DaemonConfigError
from kernelish.components.daemon import _component as component_module

from ._support import wait_until, zombies_of


class Reports:
    """A pipe children write JSON lines to; the parent reads them."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        self.buffer = b""
        self.items: list[Any] = []
        self.owner = os.getpid()

    def send(self, item: Any) -> None:
        os.write(self.w, (json.dumps(item) + "\n").encode())

    def read(self) -> list[Any]:
        if os.getpid() != self.owner:
            # A child inherited the parent's watch on the pipe (POE keeps
            # watched handles across fork): it must not eat the reports.
            return []
        while True:
            try:
                chunk = os.read(self.r, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        self.items.extend(json.loads(line) for line in lines)
        return self.items

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


@pytest.fixture
def reports() -> Iterator[Reports]:
    r = Reports()
    yield r
    r.close()


def run_daemon_kernel() -> float:
    """Run the kernel in the parent; a child that returns exits at once."""
    me = os.getpid()
    start = time.monotonic()
    try:
        poe_kernel.run()
    except BaseException:
        if os.getpid() != me:
            os._exit(3)
        raise
    finally:
        if os.getpid() != me:
            os._exit(0)
    return time.monotonic() - start


def no_children_left() -> None:
    me = psutil.Process()
    wait_until(lambda: not me.children(), 5, "every child process to be gone")
    assert zombies_of(os.getpid()) == []


def user_session(states: dict[str, Callable[..., Any]], watch: list[str]) -> Session | None:
    def _start(_: Any) -> None:
        kernel = _[KERNEL]
        kernel.alias_set("user")
        for name in watch:
            kernel.sig(name, name)
        kernel.sig("daemon_shutdown", "_bye")

    def _bye(_: Any) -> None:
        _[KERNEL].alias_remove("user")
        _[KERNEL].delay("tick")

    return Session.create(inline_states={"_start": _start, "_bye": _bye, **states})


# -- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"max_children": -1}, "max_children"),
        ({"start_children": "ten"}, "start_children"),
        ({"start_children": 4, "min_spare": 5, "max_spare": 2}, "max_spare"),
        ({"logfile": "/no/such/dir/daemon.log"}, "logfile"),
        ({"user": "no-such-user-kernelish"}, "user"),
        ({"requests": 0}, "requests"),
        ({"max_childern": 3}, "max_childern"),
    ],
)
def test_spawn_refuses_bad_configuration_naming_the_field(
    params: dict[str, Any], field: str
) -> None:
    with pytest.raises(DaemonConfigError) as info:
        DaemonComponent.spawn(**params)
    assert field in str(info.value)
    assert "\n" not in str(info.value), "one line"
    assert not poe_kernel.introspection.sessions(), "a refused spawn must not create a session"


def test_default_min_max_follows_the_seed() -> None:
    d = DaemonComponent.new(start_children=10)
    assert (d.config.min_spare, d.config.max_spare, d.config.max_children) == (10, 20, 30)
    d = DaemonComponent.new(start_children=1, max_children=10)
    assert (d.config.min_spare, d.config.max_spare) == (2, 8)
    assert DaemonComponent.new(start_children=1).is_prefork()
    assert DaemonComponent.new(max_children=3).is_fork()
    assert not DaemonComponent.new().is_fork()


# -- pre-forking -------------------------------------------------------------------------


def test_prefork_pool_serves_recycles_and_shuts_down(reports: Reports) -> None:
    """Children announce themselves, serve ``requests`` fake requests each,
    are replaced at once, and all go at shutdown."""

    def daemon_child(_: Any) -> None:
        _[KERNEL].select_read(reports.r)  # forked children inherit watched handles
        Daemon.update_status("wait")

    def daemon_accept(_: Any) -> None:
        Daemon.update_status("req")
        reports.send({"pid": os.getpid(), "status": Daemon.status()})
        Daemon.update_status("done")

    def daemon_parent(_: Any) -> None:
        _[KERNEL].select_read(reports.r, "collect")

    def collect(_: Any) -> None:
        served = reports.read()
        if len(served) >= 12:
            _[KERNEL].select_read(reports.r)
            _[HEAP]["final_status"] = Daemon.status()
            Daemon.shutdown()

    user_session(
        {
            "daemon_child": daemon_child,
            "daemon_accept": daemon_accept,
            "daemon_parent": daemon_parent,
            "collect": collect,
        },
        ["daemon_child", "daemon_accept", "daemon_parent"],
    )
    daemon = DaemonComponent.spawn(start_children=2, requests=2, min_spare=2, max_children=6)
    elapsed = run_daemon_kernel()
    served = reports.items
    pids = [item["pid"] for item in served]
    assert len(served) >= 12
    assert len(set(pids)) >= 6, "each child serves at most `requests` requests"
    assert max(pids.count(p) for p in set(pids)) <= 2
    assert all(p != os.getpid() for p in pids)
    child_status = served[0]["status"].split("\n")
    assert child_status[0] == "DaemonComponent"
    assert child_status[1] == "    Pre-forking server, we are a child"
    assert child_status[4] == "    Slots [" + child_status[4][len("    Slots [") :]
    assert daemon.children == {}
    assert elapsed < 15
    no_children_left()


def test_status_and_peek_text_in_the_parent() -> None:
    seen: dict[str, str] = {}

    def daemon_parent(_: Any) -> None:
        seen["status"] = Daemon.status() or ""
        seen["peek"] = Daemon.peek(True)
        seen["short"] = Daemon.peek(False)
        Daemon.shutdown()

    user_session({"daemon_parent": daemon_parent}, ["daemon_parent"])
    DaemonComponent.spawn(start_children=1, max_children=3, shutdown_timeout=1)
    run_daemon_kernel()
    status = seen["status"].split("\n")
    assert status[0] == "DaemonComponent"
    assert status[1] == "    Pre-forking server, we are the parent"
    assert status[2].startswith("    1 children: ")
    assert "Slots [" in seen["status"]
    peek = seen["peek"]
    assert peek.startswith("Event Queue:\n")
    assert "Sessions: \n" in peek
    assert "(Daemon)" in peek and "ref count:" in peek and "Aliases: Daemon" in peek
    assert "Slots [" in peek
    assert "Sessions:" not in seen["short"]
    no_children_left()


def test_sigusr2_writes_the_peek_dump_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    def daemon_start(_: Any) -> None:
        os.kill(os.getpid(), signal.SIGUSR2)
        _[KERNEL].delay("later", 0.3)

    def later(_: Any) -> None:
        Daemon.shutdown()

    user_session({"daemon_start": daemon_start, "later": later}, ["daemon_start"])
    DaemonComponent.spawn()
    run_daemon_kernel()
    err = capfd.readouterr().err
    assert f"{os.getpid()}: Event Queue:" in err
    assert "Sessions:" in err


# -- post-forking ------------------------------------------------------------------------


def test_fork_mode_child_gets_info_before_the_parent_loop_runs(reports: Reports) -> None:
    """update_status('req', info) forks at once; the child has handled
    daemon_child (ARG1 = info) before the call even returns to its caller."""
    order: list[str] = []

    def go(_: Any) -> None:
        Daemon.update_status("req", {"n": 7})
        order.append("returned")
        if os.getpid() != _[HEAP]["parent"]:
            reports.send({"order": order})
            Daemon.update_status("done")
        else:
            assert len(daemon.children or {}) == 1
            _[KERNEL].select_read(reports.r, "collect")

    def daemon_child(_: Any) -> None:
        order.append(f"daemon_child {_[ARG0]} {_[ARG1]['n']}")

    def collect(_: Any) -> None:
        if reports.read():
            _[KERNEL].select_read(reports.r)
            Daemon.shutdown()

    session = user_session(
        {"go": go, "daemon_child": daemon_child, "collect": collect}, ["daemon_child"]
    )
    assert session is not None
    session.heap["parent"] = os.getpid()
    daemon = DaemonComponent.spawn(max_children=3)
    poe_kernel.post("user", "go")
    run_daemon_kernel()
    assert reports.items == [{"order": ["daemon_child daemon_child 7", "returned"]}]
    assert order == ["returned"], "the parent never sees daemon_child"
    no_children_left()


def test_fork_mode_pauses_at_max_children_and_resumes(reports: Reports) -> None:
    """With max_children=2, the second request pauses accepting at once; a
    child's exit resumes it.  No child beyond max_children."""
    release_r, release_w = os.pipe()
    events: list[tuple[str, int]] = []

    def go(_: Any) -> None:
        for n in range(2):
            Daemon.update_status("req", {"n": n})
            if os.getpid() != _[HEAP]["parent"]:
                return
        events.append(("children", len(daemon.children or {})))
        os.write(release_w, b"x")  # let one child finish

    def daemon_child(_: Any) -> None:
        os.read(release_r, 1)
        Daemon.update_status("done")

    def daemon_pause(_: Any) -> None:
        events.append(("pause", len(daemon.children or {})))

    def daemon_accept(_: Any) -> None:
        events.append(("accept", len(daemon.children or {})))
        os.write(release_w, b"x")
        Daemon.shutdown()

    session = user_session(
        {
            "go": go,
            "daemon_child": daemon_child,
            "daemon_pause": daemon_pause,
            "daemon_accept": daemon_accept,
        },
        ["daemon_child", "daemon_pause", "daemon_accept"],
    )
    assert session is not None
    session.heap["parent"] = os.getpid()
    daemon = DaemonComponent.spawn(max_children=2)
    poe_kernel.post("user", "go")
    try:
        run_daemon_kernel()
    finally:
        os.close(release_r)
        os.close(release_w)
    assert events[:3] == [("pause", 2), ("children", 2), ("accept", 1)]
    no_children_left()


def test_fork_mode_a_long_request_said_in_daemon_child_stays_long(reports: Reports) -> None:
    """A post-forked child is on its request ('r') from its start, so a
    'long' it says in daemon_child holds (the seed wrote 'req' after
    daemon_child, over it)."""

    def go(_: Any) -> None:
        Daemon.update_status("req", {"n": 1})
        if os.getpid() == _[HEAP]["parent"]:
            _[KERNEL].select_read(reports.r, "collect")

    def daemon_child(_: Any) -> None:
        mine = (
            daemon.scoreboard.read(daemon.child.slot) if daemon.scoreboard and daemon.child else "?"
        )
        Daemon.update_status("long")
        _[KERNEL].yield_("later", mine)

    def later(_: Any) -> None:
        board, child = daemon.scoreboard, daemon.child
        now = board.read(child.slot) if board and child else "?"
        reports.send({"in_daemon_child": _[ARG0], "after": now})
        Daemon.update_status("done")

    def collect(_: Any) -> None:
        if reports.read():
            _[KERNEL].select_read(reports.r)
            Daemon.shutdown()

    session = user_session(
        {"go": go, "daemon_child": daemon_child, "later": later, "collect": collect},
        ["daemon_child"],
    )
    assert session is not None
    session.heap["parent"] = os.getpid()
    daemon = DaemonComponent.spawn(max_children=2)
    poe_kernel.post("user", "go")
    run_daemon_kernel()
    assert reports.items == [{"in_daemon_child": "r", "after": "l"}]
    no_children_left()


# -- shutdown, babysitting, privileges -------------------------------------------------


def test_children_that_ignore_term_are_killed_after_shutdown_timeout(reports: Reports) -> None:
    def daemon_child(_: Any) -> None:
        _[KERNEL].select_read(reports.r)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a child that ignores TERM
        _[KERNEL].delay("tick", 60)  # and has work (else IDLE would end it, as in POE)
        reports.send({"ignoring": os.getpid()})
        Daemon.update_status("wait")

    def daemon_parent(_: Any) -> None:
        _[KERNEL].select_read(reports.r, "collect")

    def collect(_: Any) -> None:
        if len(reports.read()) >= 2:  # both children ignore TERM now
            _[KERNEL].select_read(reports.r)
            shutdown_at.append(time.monotonic())
            Daemon.shutdown()

    shutdown_at: list[float] = []

    user_session(
        {"daemon_child": daemon_child, "daemon_parent": daemon_parent, "collect": collect},
        ["daemon_child", "daemon_parent"],
    )
    DaemonComponent.spawn(start_children=2, min_spare=2, max_children=4, shutdown_timeout=0.5)
    run_daemon_kernel()
    waited = time.monotonic() - shutdown_at[0]
    assert 0.5 <= waited < 5, "KILLed after shutdown_timeout, not before"
    no_children_left()


def test_babysitter_escalates_on_a_rogue_and_replaces_it(reports: Reports) -> None:
    def daemon_child(_: Any) -> None:
        _[KERNEL].select_read(reports.r)
        reports.send({"pid": os.getpid()})
        if not os.path.exists(flag):
            Path(flag).touch()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # a rogue: burns CPU, never yields
                pass
        Daemon.update_status("wait")

    def daemon_parent(_: Any) -> None:
        _[KERNEL].select_read(reports.r, "collect")

    def collect(_: Any) -> None:
        if len({item["pid"] for item in reports.read()}) >= 2:
            _[KERNEL].select_read(reports.r)
            Daemon.shutdown()

    flag = f"/tmp/kernelish-rogue-{os.getpid()}"
    user_session(
        {"daemon_child": daemon_child, "daemon_parent": daemon_parent, "collect": collect},
        ["daemon_child", "daemon_parent"],
    )
    try:
        DaemonComponent.spawn(
            start_children=1, min_spare=1, max_children=3, babysit=0.2, rogue_cpu=0.3
        )
        elapsed = run_daemon_kernel()
    finally:
        if os.path.exists(flag):
            os.unlink(flag)
    rogue = reports.items[0]["pid"]
    assert not psutil.pid_exists(rogue)
    assert elapsed < 8, "the rogue was escalated long before its 10 s loop ended"
    no_children_left()


def test_fork_failure_is_retried_after_a_second(
    monkeypatch: pytest.MonkeyPatch, reports: Reports
) -> None:
    failures = {"left": 2}
    real_fork = os.fork

    def flaky_fork() -> int:
        if failures["left"]:
            failures["left"] -= 1
            raise OSError(11, "Resource temporarily unavailable")
        return real_fork()

    monkeypatch.setattr(component_module, "fork_process", flaky_fork)

    def daemon_child(_: Any) -> None:
        _[KERNEL].select_read(reports.r)
        reports.send({"pid": os.getpid(), "t": time.monotonic()})
        Daemon.update_status("wait")

    def daemon_parent(_: Any) -> None:
        _[KERNEL].select_read(reports.r, "collect")

    def collect(_: Any) -> None:
        if len(reports.read()) >= 2:
            _[KERNEL].select_read(reports.r)
            Daemon.shutdown()

    user_session(
        {"daemon_child": daemon_child, "daemon_parent": daemon_parent, "collect": collect},
        ["daemon_child", "daemon_parent"],
    )
    start = time.monotonic()
    DaemonComponent.spawn(start_children=2, min_spare=2, max_children=4)
    run_daemon_kernel()
    assert failures["left"] == 0
    assert reports.items[0]["t"] - start >= 0.9, "the failed forks were retried after 1 s"
    no_children_left()


def test_a_permanent_fork_failure_shuts_down_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_fork() -> int:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(component_module, "fork_process", broken_fork)
    DaemonComponent.spawn(start_children=2, max_children=4)
    elapsed = run_daemon_kernel()
    assert elapsed < 3
    assert not poe_kernel.introspection.sessions()


def test_drop_privs_to_nobody_cannot_be_regained(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    nobody = pwd.getpwnam("nobody")
    logfile = tmp_path / "daemon.log"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            daemon = DaemonComponent.new(user="nobody", logfile=logfile)
            fd = os.open(logfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            daemon.drop_privs()
            os.write(fd, b"written after the drop\n")
            try:
                os.setuid(0)
                regained = True
            except PermissionError:
                regained = False
            report = {
                "uid": os.getresuid(),
                "gid": os.getresgid(),
                "groups": os.getgroups(),
                "regained": regained,
            }
            os.write(w, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        data = b""
        while chunk := os.read(r, 4096):
            data += chunk
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    report = json.loads(data)
    assert report["uid"] == [nobody.pw_uid] * 3
    assert report["gid"] == [nobody.pw_gid] * 3
    assert 0 not in report["groups"]
    assert report["regained"] is False
    assert logfile.read_text() == "written after the drop\n"
