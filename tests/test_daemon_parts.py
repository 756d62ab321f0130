"""The Daemon's parts without a fork: its states, its modes, a child's role.

What a forked child does on ``update_status`` is its :class:`ChildRole`'s
business, and the role is a plain object over a real (shared-memory)
scoreboard: its rules are checked here from a table, in this process.  The
forks themselves are tests/test_daemon.py's.
"""

from __future__ import annotations

import ast
import logging
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from kernelish import ARG0, ARG1, KERNEL, Session, poe_kernel
from kernelish.components.daemon import Daemon, DaemonComponent, Scoreboard, SlotState
from kernelish.components.daemon import _child as child_module
from kernelish.components.daemon._child import ChildRole, PostforkChild, PreforkChild
from kernelish.components.daemon._control_server import ControlServer
from kernelish.components.daemon._mode import Mode
from kernelish.components.daemon._services import status_info, summary
from kernelish.components.daemon._states import state, states_of

DAEMON_PACKAGE = Path(__file__).resolve().parent.parent / "kernelish" / "components" / "daemon"

# -- states ----------------------------------------------------------------------------


def _named_events(tree: ast.AST) -> set[str]:
    """The event names a module posts, calls, delays or watches signals with:
    the string constants in the event position of the kernel's calls."""
    position = {"yield_": 0, "delay": 0, "delay_set": 0, "call": 1, "sig": 1, "sig_child": 1}
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        args = node.args
        if isinstance(func, ast.Attribute) and func.attr == "partial" and args:
            func, args = args[0], args[1:]  # functools.partial(kernel.yield_, "x")
        if isinstance(func, ast.Attribute) and func.attr in position:
            at = position[func.attr]
            event = args[at] if len(args) > at else None
            if isinstance(event, ast.Constant) and isinstance(event.value, str):
                names.add(event.value)
    return names


def _inline_states(tree: ast.AST) -> set[str]:
    """The keys of every ``inline_states={...}`` a module creates a session with."""
    keys = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.keyword)
            and node.arg == "inline_states"
            and isinstance(node.value, ast.Dict)
        ):
            keys |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    return keys


def test_every_event_the_daemon_names_is_a_state() -> None:
    """No state list to keep in step by hand: every event the Daemon's modules
    post, call, delay or watch a signal with is a ``@state`` of the object
    whose session it is (or a key of an inline session's states)."""
    daemon_states = set(states_of(DaemonComponent))
    control_states = set(states_of(ControlServer))
    seen = set()
    for path in sorted(DAEMON_PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        named = _named_events(tree)
        seen |= named
        own = control_states if path.name == "_control_server.py" else daemon_states
        missing = named - own - _inline_states(tree)
        assert not missing, f"{path.name} names events that are no states: {sorted(missing)}"
    # The check sees what it must: the Daemon's own loop and the facade's calls.
    assert {"fork", "check_scoreboard", "sig_CHLD", "shutdown", "update_status", "expire"} <= seen


def test_the_seeds_states_are_all_there() -> None:
    assert set(states_of(DaemonComponent)) >= {
        "_start", "_stop", "status", "update_status", "check_scoreboard", "fork", "retry",
        "waste_time", "babysit", "rogues", "shutdown", "foreign_child", "sig_CHLD", "sig_INT",
        "sig_TERM", "sig_HUP",
    }  # fmt: skip


class _Counting(DaemonComponent):
    """An override without ``@state`` stays a state; a new ``@state`` joins."""

    forks_asked = 0

    def fork(self, _: Any) -> None:
        self.forks_asked += 1
        super().fork(_)

    @state
    def hello(self, _: Any) -> str:
        return f"hello {_[ARG0]}"


def test_a_subclass_keeps_overridden_states_and_adds_its_own() -> None:
    names = states_of(_Counting)
    assert names.count("fork") == 1 and "hello" in names
    assert names[: len(states_of(DaemonComponent))] == states_of(DaemonComponent)
    daemon = _Counting.new()
    daemon.create_session()
    assert daemon.pool is None and daemon.child is None, "no pool without a forking mode"
    assert poe_kernel.call("Daemon", "hello", "there") == "hello there"
    poe_kernel.call("Daemon", "fork")
    assert daemon.forks_asked == 1, "the session calls the override"
    Daemon.shutdown()
    poe_kernel.run()


def test_expedited_signals_reach_watchers_and_subscribers_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``expedite_signal`` runs the sessions' watchers and the callables of
    ``kernel.events`` before it returns; a failing callable is logged and the
    others still hear it, as for any signal."""
    heard: list[Any] = []

    def bad(*args: Any) -> None:
        raise RuntimeError("a broken subscriber")

    def _start(_: Any) -> None:
        _[KERNEL].alias_set("user")
        _[KERNEL].sig("daemon_x", "got")

    def go(_: Any) -> None:
        daemon.expedite_signal("daemon_x", 7)
        heard.append("returned")
        _[KERNEL].alias_remove("user")
        _[KERNEL].sig("daemon_x")
        Daemon.shutdown()

    Session.create(
        inline_states={"_start": _start, "go": go, "got": lambda _: heard.append(_[ARG1])}
    )
    poe_kernel.events.on("daemon_x", bad)
    poe_kernel.events.on("daemon_x", lambda *a: heard.append(a))
    poe_kernel.events.once("daemon_x", lambda *a: heard.append("once"))
    daemon = DaemonComponent.spawn()
    poe_kernel.post("user", "go")
    try:
        poe_kernel.run()
    finally:
        poe_kernel.events.remove_all_listeners("daemon_x")
    assert heard == [7, ("daemon_x", 7), "once", "returned"]
    assert "a broken subscriber" in caplog.text


# -- modes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "mode", "head"),
    [
        ({}, Mode.DAEMON, "Daemon server"),
        ({"start_children": 2}, Mode.PREFORK, "Pre-forking server, we are the parent"),
        ({"start_children": 1, "max_children": 9}, Mode.PREFORK, "Pre-forking server, we"),
        ({"max_children": 3}, Mode.POSTFORK, "Forking server, we are the parent"),
        ({"max_children": 0}, Mode.DAEMON, "Daemon server"),
    ],
)
def test_the_mode_is_decided_once_and_said_the_same_everywhere(
    params: dict[str, Any], mode: Mode, head: str
) -> None:
    daemon = DaemonComponent.new(**params)
    assert daemon.mode is mode
    assert (daemon.is_prefork(), daemon.is_fork()) == (
        mode is Mode.PREFORK,
        mode is Mode.POSTFORK,
    )
    lines = daemon.status().split("\n")
    assert lines[0] == "DaemonComponent"
    assert lines[1].startswith("    " + head)
    assert mode.title in lines[1]
    info = status_info(daemon)
    assert info["mode"] == mode.value
    assert info["status"] == daemon.status()
    assert summary(daemon) == "Daemon server running", "no pool before _start"


# -- a child's role ----------------------------------------------------------------------

W, R, L, E = "w", "r", "l", "e"


class Harness:
    """A role over a real scoreboard, with its callbacks recorded."""

    def __init__(self, kind: type[ChildRole], max_requests: int = 2) -> None:
        self.board = Scoreboard(3)
        slot = self.board.add(SlotState.FORK)
        assert slot is not None
        self.informed: list[str] = []
        self.shutdowns = 0
        self.role = kind(
            self.board,
            slot,
            os.getpid(),
            self.informed.append,
            self.shutdown,
            max_requests=max_requests,
        )
        self.role.started()

    def shutdown(self) -> None:
        self.shutdowns += 1

    def run(self, statuses: list[str]) -> str:
        for status in statuses:
            self.role.update_status(status)
        return self.board.read(self.role.slot)


@pytest.fixture(params=[False, True], ids=["plain", "dev-mode"])
def checked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Every row runs twice: as usual, and with the lifecycle checked (where
    any warning fails the test: the Daemon's own flows are in the lifecycle)."""
    monkeypatch.setattr(child_module, "CHECK_TRANSITIONS", request.param)
    return bool(request.param)


@pytest.mark.parametrize(
    ("statuses", "slot", "served", "informed", "shutdowns"),
    [
        ([], "f", 0, [], 0),  # started: 'f', with its pid
        (["wait"], W, 0, ["daemon_accept"], 0),
        (["wait", "wait"], W, 0, ["daemon_accept"], 0),  # no second accept
        (["wait", "req"], R, 1, ["daemon_accept"], 0),
        (["wait", "req", "long"], L, 1, ["daemon_accept"], 0),  # the same request
        (["wait", "long"], L, 1, ["daemon_accept"], 0),  # a request, long at once
        (["wait", "req", "done"], W, 1, ["daemon_accept"] * 2, 0),
        (["wait", "req", "done", "req", "long", "done"], W, 2, ["daemon_accept"] * 2, 1),
        (["req", "done", "wait"], W, 1, ["daemon_accept"], 0),  # 'done' twice: no accept
    ],
)
def test_a_prefork_child_counts_its_requests(
    checked: bool,
    statuses: list[str],
    slot: str,
    served: int,
    informed: list[str],
    shutdowns: int,
) -> None:
    h = Harness(PreforkChild, max_requests=2)
    assert h.run(statuses) == slot
    assert isinstance(h.role, PreforkChild)
    assert h.role.served == served
    assert h.board.slot(h.role.slot).requests == served
    assert h.board.slot(h.role.slot).pid == os.getpid()
    assert (h.informed, h.shutdowns) == (informed, shutdowns)


@pytest.mark.parametrize(
    ("statuses", "slot", "shutdowns"),
    [
        ([], R, 0),  # on its request from the start, before daemon_child
        (["long"], L, 0),
        (["done"], W, 1),
        (["long", "done"], W, 1),
        (["wait"], W, 1),
    ],
)
def test_a_postfork_child_serves_one_request(
    checked: bool, statuses: list[str], slot: str, shutdowns: int
) -> None:
    h = Harness(PostforkChild)
    assert h.run(statuses) == slot
    assert h.board.slot(h.role.slot).requests == 1
    assert (h.informed, h.shutdowns) == ([], shutdowns)


@pytest.mark.parametrize("kind", [PreforkChild, PostforkChild])
def test_a_leaving_child_says_so_and_ignores_updates(kind: type[ChildRole]) -> None:
    h = Harness(kind)
    h.role.leave()
    assert h.run(["req", "done"]) == E
    assert (h.informed, h.shutdowns) == ([], 0)


@pytest.mark.parametrize(
    ("kind", "statuses"),
    [(PreforkChild, ["wait", "bogus"]), (PostforkChild, ["req"])],
)
def test_an_unknown_status_is_refused_in_words(
    kind: type[ChildRole], statuses: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(kind)
    before = h.board.read(h.role.slot)
    with caplog.at_level(logging.WARNING, "kernelish.daemon"):
        assert h.run(statuses[-1:]) == before
    assert f"Don't know what to do for {statuses[-1]!r}" in caplog.text


def test_dev_mode_reports_a_request_without_its_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(child_module, "CHECK_TRANSITIONS", True)
    h = Harness(PreforkChild, max_requests=5)
    h.run(["wait", "req"])
    with pytest.warns(RuntimeWarning, match=r"from 'r' \(request\) to 'r' \(request\)"):
        h.run(["req"])
    assert h.board.read(h.role.slot) == R and isinstance(h.role, PreforkChild)
    assert h.role.served == 2, "counted all the same, as the seed did"


# -- requests nobody will serve ------------------------------------------------------------


def test_a_request_for_a_stopping_daemon_is_closed() -> None:
    """A post-forking parent that is shutting down forks no more: the
    connection of a ``fork`` still on its way (a retry, a queued fork) is
    closed (its client hears EOF), not left open in the parent."""
    ours, theirs = socket.socketpair()
    seen: dict[str, Any] = {}

    def daemon_parent(_: Any) -> None:
        Daemon.shutdown()
        _[KERNEL].call(daemon.session, "fork", {"handle": ours})
        seen["closed"] = ours.fileno() == -1
        _[KERNEL].alias_remove("user")

    def _start(_: Any) -> None:
        _[KERNEL].alias_set("user")
        _[KERNEL].sig("daemon_parent", "daemon_parent")

    Session.create(inline_states={"_start": _start, "daemon_parent": daemon_parent})
    daemon = DaemonComponent.spawn(max_children=2)
    try:
        poe_kernel.run()
        theirs.settimeout(2)
        assert theirs.recv(10) == b""
    finally:
        ours.close()
        theirs.close()
    assert seen == {"closed": True}
