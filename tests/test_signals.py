"""Signals (POE-SEMANTICS section 4): named signals across the session tree,
signal classes, OS signals through the wakeup pipe, the pyee bus.

Every OS signal here is real (``os.kill``); a test that sends one always has a
watcher installed first, so a regression shows as a failed assertion, not as
pytest killed by SIGTERM.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kernelish import ARG0, SENDER, Session, poe_kernel
from kernelish._signals import SignalClass, os_signal_number, signal_type

from ._support import wait_until

Log = list[tuple[Any, ...]]


def tree(
    name: str,
    log: Log,
    children: dict[str, Any] | None = None,
    *,
    watch: tuple[str, ...] = ("MYSIG",),
    handled: frozenset[str] = frozenset(),
    states: dict[str, Callable[[Any], Any]] | None = None,
) -> Session:
    """A session aliased ``name`` (the alias keeps it alive until IDLE) that
    watches ``watch`` with extra arg ``extra-<name>`` and creates ``children``
    (a nested dict of names) in its ``_start``."""

    def start(_: Any) -> None:
        _.kernel.alias_set(name)
        for sig in watch:
            _.kernel.sig(sig, "got", f"extra-{name}")
        for child, sub in (children or {}).items():
            tree(child, log, sub, watch=watch, handled=handled, states=states)

    def got(_: Any) -> None:
        log.append(("sig", name, _.args, _.sender))
        if name in handled:
            _.kernel.sig_handled()

    def later(_: Any) -> None:
        log.append(("later", name))

    def stop(_: Any) -> None:
        log.append(("stop", name))

    all_states: dict[str, Callable[[Any], Any]] = {
        "_start": start,
        "got": got,
        "later": later,
        "_stop": stop,
    }
    all_states.update(states or {})
    session = Session.create(inline_states=all_states)
    assert session is not None
    return session


def sigs(log: Log, signame: str) -> list[str]:
    return [e[1] for e in log if e[0] == "sig" and e[2][0] == signame]


def names(log: Log, kind: str) -> list[str]:
    return [e[1] for e in log if e[0] == kind]


@pytest.fixture
def previous_handler() -> Iterator[Callable[[int, Any], None]]:
    """A Python handler a test installs before the kernel watches a signal:
    the kernel must put it back when its last watcher goes, and it records
    any signal that reached it instead of the kernel."""
    leaked: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        leaked.append(signum)

    handler.leaked = leaked  # type: ignore[attr-defined]
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)}
    for s in saved:
        signal.signal(s, handler)
    yield handler
    for s, h in saved.items():
        signal.signal(s, h)  # type: ignore[arg-type]


# -- classes ---------------------------------------------------------------


def test_signal_classes() -> None:
    for name in ("INT", "TERM", "HUP", "QUIT", "KILL", "IDLE", "DIE"):
        assert signal_type(name) is SignalClass.TERMINAL, name
    for name in ("ZOMBIE", "UIDESTROY"):
        assert signal_type(name) is SignalClass.NONMASKABLE, name
    for name in ("USR1", "USR2", "CHLD", "PIPE", "WINCH", "ALRM", "daemon_child"):
        assert signal_type(name) is SignalClass.BENIGN, name
    assert int(SignalClass.TERMINAL) == 1 and int(SignalClass.NONMASKABLE) == 2
    assert os_signal_number("USR1") == signal.SIGUSR1
    assert os_signal_number("KILL") is None
    assert os_signal_number("daemon_child") is None


# -- the session tree ------------------------------------------------------


def test_delivery_deepest_first_with_args_and_sender() -> None:
    log: Log = []
    a = tree("A", log, {"A1": {"A11": {}}, "A2": {}})
    tree("B", log)
    assert poe_kernel.signal(a, "MYSIG", "x", "y") is True
    poe_kernel.run()

    order = sigs(log, "MYSIG")
    assert order[0] == "A11" and order[-1] == "A"
    assert sorted(order) == ["A", "A1", "A11", "A2"]  # B is not in A's tree
    for entry in log:
        if entry[0] == "sig":
            assert entry[2] == ("MYSIG", "x", "y", f"extra-{entry[1]}")
            assert entry[3] is poe_kernel
    # User signals are benign: nobody stopped until the IDLE at the end.
    first_stop = next(i for i, e in enumerate(log) if e[0] == "stop")
    assert first_stop > max(i for i, e in enumerate(log) if e[0] == "sig")
    assert sorted(names(log, "stop")) == ["A", "A1", "A11", "A2", "B"]


def test_signal_to_kernel_is_a_broadcast() -> None:
    log: Log = []
    heard: list[tuple[Any, ...]] = []

    def subscriber(*args: Any) -> None:
        heard.append(("fn", *args))
        log.append(("fn",))

    tree("A", log, {"A1": {"A11": {}}})
    tree("B", log, {"B1": {}})
    poe_kernel.events.on("MYSIG", subscriber)
    try:
        assert poe_kernel.signal(poe_kernel, "MYSIG", 7) is True
        assert poe_kernel.signal(poe_kernel.ID, "MYSIG", 8) is True
        poe_kernel.run()
    finally:
        poe_kernel.events.remove_listener("MYSIG", subscriber)

    order = sigs(log, "MYSIG")
    assert sorted(order) == sorted(["A", "A1", "A11", "B", "B1"] * 2)
    first = order[:5]
    assert first.index("A11") < first.index("A1") < first.index("A")
    assert first.index("B1") < first.index("B")
    # The plain callable hears the same broadcast, after the sessions.
    assert heard == [("fn", "MYSIG", 7), ("fn", "MYSIG", 8)]
    assert log.index(("fn",)) == 5


def test_die_reaches_ancestors_and_stops_the_touched_only() -> None:
    log: Log = []
    tree("A", log, {"A1": {"A11": {}}, "A2": {}}, watch=("DIE", "IDLE"))
    tree("B", log, watch=("DIE", "IDLE"))
    assert poe_kernel.signal("A11", "DIE", {"error_str": "boom"}) is True
    poe_kernel.run()

    assert sigs(log, "DIE") == ["A11", "A1", "A"]
    stops = names(log, "stop")
    # Unhandled DIE stops what it touched, deepest first, at once ...
    assert stops[:3] == ["A11", "A1", "A"]
    # ... and A2 and B only went at the IDLE at the end.
    assert sorted(sigs(log, "IDLE")) == ["A2", "B"]
    assert sorted(stops[3:]) == ["A2", "B"]


def test_die_handled_by_an_ancestor_saves_all() -> None:
    log: Log = []
    tree("A", log, {"A1": {"A11": {}}}, watch=("DIE", "IDLE"), handled=frozenset({"A"}))
    poe_kernel.signal("A11", "DIE", {"error_str": "boom"})
    poe_kernel.run()
    assert sigs(log, "DIE") == ["A11", "A1", "A"]
    # Everyone lived to hear IDLE (which A handled: the ZOMBIE ended them).
    assert sorted(sigs(log, "IDLE")) == ["A", "A1", "A11"]


def test_one_sig_handled_saves_every_touched_session() -> None:
    log: Log = []

    def fire(_: Any) -> None:
        _.kernel.signal("B", "TERM")
        _.kernel.post("B", "later")
        _.kernel.post("B1", "later")

    tree("B", log, {"B1": {}}, watch=("TERM",), handled=frozenset({"B1"}))
    Session.create(inline_states={"_start": fire})
    poe_kernel.run()
    assert sigs(log, "TERM") == ["B1", "B"]
    assert sorted(names(log, "later")) == ["B", "B1"]


@pytest.mark.parametrize("signame", ["UIDESTROY", "ZOMBIE"])
def test_nonmaskable_stops_even_when_handled(signame: str) -> None:
    log: Log = []

    def fire(_: Any) -> None:
        _.kernel.signal("A", signame)
        _.kernel.post("A1", "later")

    tree("A", log, {"A1": {}}, watch=(signame,), handled=frozenset({"A", "A1"}))
    tree("C", log)
    Session.create(inline_states={"_start": fire})
    poe_kernel.run()
    assert sigs(log, signame) == ["A1", "A"]
    assert names(log, "stop")[:2] == ["A1", "A"]
    assert names(log, "later") == []  # A1's event was purged when it stopped
    assert "C" in names(log, "stop")


def test_hup_is_terminal_without_a_watcher() -> None:
    log: Log = []

    def fire(_: Any) -> None:
        _.kernel.signal(_.kernel, "HUP")
        _.kernel.post("A", "later")

    tree("A", log, {"A1": {}}, watch=())
    Session.create(inline_states={"_start": fire})
    poe_kernel.run()
    assert names(log, "later") == []
    assert names(log, "stop") == ["A1", "A"]


def test_user_signal_with_a_terminal_name_has_its_class() -> None:
    log: Log = []
    tree("A", log, {"A1": {}}, watch=("TERM",))
    tree("B", log, watch=("TERM",))
    poe_kernel.signal("A", "TERM", "why")
    poe_kernel.post("B", "later")
    poe_kernel.run()
    assert sigs(log, "TERM") == ["A1", "A"]
    assert names(log, "stop")[:2] == ["A1", "A"]
    assert names(log, "later") == ["B"]  # B was not in A's tree


# -- sig() and signal() ----------------------------------------------------


def test_sig_watchers_do_not_keep_a_session_alive() -> None:
    log: Log = []
    before = signal.getsignal(signal.SIGUSR1)

    def start(_: Any) -> None:
        _.kernel.sig("USR1", "usr1")
        _.kernel.sig("daemon_child", "dc")
        log.append(("handler", signal.getsignal(signal.SIGUSR1) is not before))

    def stop(_: Any) -> None:
        log.append(("stop",))

    Session.create(inline_states={"_start": start, "_stop": stop})
    started = time.monotonic()
    poe_kernel.run()
    assert time.monotonic() - started < 1.0
    assert log == [("handler", True), ("stop",)]
    assert signal.getsignal(signal.SIGUSR1) == before
    assert poe_kernel.signal_watchers("daemon_child") == {}


def test_sig_without_event_unregisters() -> None:
    log: Log = []

    def drop(_: Any) -> None:
        _.kernel.sig("MYSIG")
        log.append(("watchers", dict(_.kernel.signal_watchers("MYSIG"))))
        _.kernel.signal(_.kernel, "MYSIG", "after")

    a = tree("A", log, states={"drop": drop})
    b = tree("B", log)
    poe_kernel.signal(poe_kernel, "MYSIG", "before")
    poe_kernel.post(a, "drop")
    poe_kernel.run()
    got = [(e[1], e[2][1]) for e in log if e[0] == "sig"]
    assert sorted(got) == [("A", "before"), ("B", "after"), ("B", "before")]
    assert ("watchers", {b: "got"}) in log


def test_sig_reregistering_replaces_event_and_extra() -> None:
    log: Log = []

    def start(_: Any) -> None:
        _.kernel.alias_set("A")
        _.kernel.sig("MYSIG", "one", "x")
        _.kernel.sig("MYSIG", "two", "y")

    def one(_: Any) -> None:
        log.append(("one", _.args))

    def two(_: Any) -> None:
        log.append(("two", _.args))

    Session.create(inline_states={"_start": start, "one": one, "two": two})
    poe_kernel.signal(poe_kernel, "MYSIG")
    poe_kernel.run()
    assert log == [("two", ("MYSIG", "y"))]


def test_sig_with_a_callable_runs_it_as_the_sessions_handler() -> None:
    log: Log = []
    me: list[Any] = []

    def on_x(_: Any) -> None:
        log.append((_.session, _.sender, _.args, _.kernel.get_active_session()))

    def start(_: Any) -> None:
        me.append(_.session)
        _.kernel.alias_set("A")
        _.kernel.sig("x", on_x, "extra")

    Session.create(inline_states={"_start": start})
    poe_kernel.signal(poe_kernel, "x", 1)
    poe_kernel.run()
    assert log == [(me[0], poe_kernel, ("x", 1, "extra"), me[0])]


def test_signal_return_values() -> None:
    log: Log = []
    gone: list[Any] = []

    def start(_: Any) -> None:
        k = _.kernel
        log.append(("self", k.signal(_.session, "MYSIG")))
        log.append(("kernel", k.signal(k, "MYSIG")))
        k.last_error = 0
        log.append(("nope", k.signal("no such alias", "MYSIG"), k.last_error))
        k.last_error = 0
        log.append(("dead", k.signal(gone[0], "MYSIG"), k.last_error))

    gone.append(Session.create(inline_states={"_start": lambda _: None}))
    poe_kernel.run()  # the empty session is collected
    Session.create(inline_states={"_start": start})
    poe_kernel.run()
    assert log == [
        ("self", True),
        ("kernel", True),
        ("nope", False, errno.ESRCH),
        ("dead", False, errno.ESRCH),
    ]


def test_signal_watchers_can_be_called_synchronously() -> None:
    """The seed's ``expedite_signal``: call each watcher now, not via the queue."""
    log: Log = []
    tree("A", log)
    tree("B", log, {"B1": {}})

    def start(_: Any) -> None:
        watchers = _.kernel.signal_watchers("MYSIG")
        log.append(("watchers", sorted(s.ID for s in watchers), set(watchers.values())))
        for session, event in watchers.items():
            _.kernel.call(session, event, "MYSIG", "now")
        log.append(("done",))

    Session.create(inline_states={"_start": start})
    assert log[0][0] == "watchers" and log[0][2] == {"got"} and len(log[0][1]) == 3
    assert sorted(e[1] for e in log[1:4]) == ["A", "B", "B1"]
    assert all(e[2] == ("MYSIG", "now") for e in log[1:4])
    assert log[4] == ("done",)
    poe_kernel.run()


# -- OS signals ------------------------------------------------------------


def test_os_signal_reaches_watchers_with_only_its_name(previous_handler: Any) -> None:
    log: Log = []

    def start(_: Any) -> None:
        _.kernel.sig("USR1", "usr1")
        _.kernel.alias_set("A")
        _.kernel.yield_("fire")

    def fire(_: Any) -> None:
        os.kill(os.getpid(), signal.SIGUSR1)

    def usr1(_: Any) -> None:
        log.append((_[ARG0:], _[SENDER]))
        _.kernel.sig("USR1")

    Session.create(inline_states={"_start": start, "fire": fire, "usr1": usr1})
    poe_kernel.run()
    assert log == [(("USR1",), poe_kernel)]
    assert previous_handler.leaked == []
    assert signal.getsignal(signal.SIGUSR1) is previous_handler


def test_os_handler_installed_only_while_watched(previous_handler: Any) -> None:
    """The kernel's handler is there while one session watches, and the
    previous handler (and wakeup fd) comes back when the last watcher goes."""
    seen: list[tuple[str, bool]] = []

    def mine() -> bool:
        return signal.getsignal(signal.SIGUSR1) is not previous_handler

    def watcher(name: str) -> None:
        def start(_: Any) -> None:
            _.kernel.alias_set(name)
            _.kernel.sig("USR1", "usr1")
            seen.append((f"{name} watches", mine()))

        def unwatch(_: Any) -> None:
            _.kernel.sig("USR1")
            seen.append((f"{name} unwatched", mine()))

        def leave(_: Any) -> None:
            _.kernel.alias_remove(name)

        def stop(_: Any) -> None:
            seen.append((f"{name} stop", mine()))

        states = {"_start": start, "unwatch": unwatch, "leave": leave, "_stop": stop}
        Session.create(inline_states=states)

    def driver(_: Any) -> None:
        watcher("A")
        watcher("B")
        _.kernel.post("A", "unwatch")
        _.kernel.post("B", "leave")  # B's watcher goes when B stops

    assert not mine()
    Session.create(inline_states={"_start": driver})
    poe_kernel.run()
    assert seen == [
        ("A watches", True),
        ("B watches", True),
        ("A unwatched", True),  # B still watches
        ("B stop", True),  # resources are released after _stop
        ("A stop", False),
    ]
    assert not mine()
    current = signal.set_wakeup_fd(-1)
    assert current == -1, "the wakeup fd was not given back"


def test_term_unhandled_ends_run(previous_handler: Any) -> None:
    log: Log = []

    def start(_: Any) -> None:
        _.kernel.delay("never", 30)
        _.kernel.yield_("fire")

    def fire(_: Any) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    states = {"never": lambda _: None}
    tree("A", log, {"A1": {}}, watch=("TERM",), states=states)
    tree("B", log, watch=())
    Session.create(inline_states={"_start": start, "fire": fire, "never": lambda _: None})
    started = time.monotonic()
    poe_kernel.run()
    assert time.monotonic() - started < 5
    assert sigs(log, "TERM") == ["A1", "A"]
    assert log[1][2] == ("TERM", "extra-A")
    assert sorted(names(log, "stop")) == ["A", "A1", "B"]
    assert previous_handler.leaked == []
    assert signal.getsignal(signal.SIGTERM) is previous_handler
    assert poe_kernel.introspection.sessions() == []


def test_term_handled_does_not_stop(previous_handler: Any) -> None:
    log: Log = []

    def fire(_: Any) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    def got(_: Any) -> None:
        log.append(("sig", "A", _.args, _.sender))
        _.kernel.sig_handled()
        _.kernel.yield_("later")
        _.kernel.post("B", "later")

    tree("A", log, watch=("TERM",), states={"got": got, "fire": fire})
    tree("B", log, watch=())
    poe_kernel.post("A", "fire")
    poe_kernel.run()
    assert sigs(log, "TERM") == ["A"]
    later = [i for i, e in enumerate(log) if e[0] == "later"]
    stops = [i for i, e in enumerate(log) if e[0] == "stop"]
    assert len(later) == 2 and max(later) < min(stops)
    assert previous_handler.leaked == []


def test_os_hup_stops_sessions_that_do_not_watch_it(previous_handler: Any) -> None:
    log: Log = []

    def fire(_: Any) -> None:
        os.kill(os.getpid(), signal.SIGHUP)
        _.kernel.post("A", "later")  # runs first: HUP arrives at the next poll

    tree("A", log, {"A1": {}}, watch=(), states={"fire": fire})
    tree("W", log, watch=("HUP",))
    poe_kernel.post("A", "fire")
    poe_kernel.run()
    assert sigs(log, "HUP") == ["W"]
    assert sorted(names(log, "stop")) == ["A", "A1", "W"]
    assert previous_handler.leaked == []


def test_another_handlers_signal_is_not_broadcast(previous_handler: Any) -> None:
    """CPython writes every caught signal to the one wakeup fd; a HUP caught
    by someone else's Python handler must not reach the kernel as an
    unhandled (terminal) HUP while the kernel only watches USR1."""
    log: Log = []

    def fire(_: Any) -> None:
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGUSR1)

    def got(_: Any) -> None:
        log.append(("sig", "A", _.args, _.sender))
        _.kernel.yield_("later")

    tree("A", log, watch=("USR1",), states={"fire": fire, "got": got})
    poe_kernel.post("A", "fire")
    poe_kernel.run()
    assert previous_handler.leaked == [signal.SIGHUP]
    assert [e[0] for e in log] == ["sig", "later", "stop"]


def test_a_burst_of_1000_usr1_never_wedges_the_kernel() -> None:
    """1000 SIGUSR1 sent while a handler runs: they coalesce into few events,
    and the kernel still hears the next one.  Only an alias keeps the session
    alive, so a signal left in the pipe at the idle check would be lost."""
    counts: dict[str, int] = {"usr1": 0}
    log: Log = []

    def start(_: Any) -> None:
        _.kernel.sig("USR1", "usr1")
        _.kernel.alias_set("A")
        _.kernel.yield_("burst")

    def burst(_: Any) -> None:
        pid = os.getpid()
        for _i in range(1000):
            os.kill(pid, signal.SIGUSR1)
        _.kernel.yield_("posted")

    def posted(_: Any) -> None:
        log.append(("posted",))

    def usr1(_: Any) -> None:
        counts["usr1"] += 1
        log.append(("usr1", _.args))
        if "burst" not in counts:
            counts["burst"] = counts["usr1"]
            os.kill(os.getpid(), signal.SIGUSR1)  # not wedged: one more
        else:
            _.kernel.sig("USR1")
            _.kernel.alias_remove("A")

    states = {"_start": start, "burst": burst, "posted": posted, "usr1": usr1}
    Session.create(inline_states=states)
    started = time.monotonic()
    poe_kernel.run()
    elapsed = time.monotonic() - started
    assert all(e[1] == ("USR1",) for e in log if e[0] == "usr1")
    assert 1 <= counts.get("burst", 0) <= 1000
    assert counts["usr1"] == counts["burst"] + 1
    assert ("posted",) in log
    print(f"\n1000 USR1 in a burst -> {counts['burst']} event(s); run {elapsed:.3f}s")


def test_signal_during_a_long_handler_is_not_lost(procs: Any) -> None:
    """Another process signals us while a handler computes; the event arrives
    after the handler returns, and wakes a loop with nothing else to do."""
    go_r, go_w = os.pipe()
    sent_r, sent_w = os.pipe()
    idle_r, idle_w = os.pipe()  # watched, never written: keeps the session alive
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.read(go_r, 1)
            os.kill(parent, signal.SIGUSR1)
            os.write(sent_w, b"1")
            os.read(go_r, 1)
            os.kill(parent, signal.SIGUSR1)
            code = 0
        finally:
            os._exit(code)
    procs.add(pid)
    log: Log = []

    def start(_: Any) -> None:
        _.kernel.sig("USR1", "usr1")
        _.kernel.select_read(idle_r, "never")
        _.kernel.yield_("compute")

    def compute(_: Any) -> None:
        os.write(go_w, b"g")
        # Busy until the other process has sent the signal (bounded).
        deadline = time.monotonic() + 10
        total = 0
        while not os.read(sent_r, 1) and time.monotonic() < deadline:
            total += 1
        total += sum(i * i for i in range(100_000))
        log.append(("computed",))

    def usr1(_: Any) -> None:
        log.append(("usr1", _.args))
        if len(names(log, "usr1")) == 1:
            # Second signal: sent while we sit in select() with no timer.
            os.write(go_w, b"g")
        else:
            _.kernel.sig("USR1")
            _.kernel.select_read(idle_r)

    states = {"_start": start, "compute": compute, "usr1": usr1, "never": lambda _: None}
    Session.create(inline_states=states)
    try:
        poe_kernel.run()
    finally:
        for fd in (go_r, go_w, sent_r, sent_w, idle_r, idle_w):
            os.close(fd)
    assert log == [("computed",), ("usr1", ("USR1",)), ("usr1", ("USR1",))]
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_sigpipe_is_ignored_while_the_kernel_runs() -> None:
    seen: list[Any] = []
    saved = signal.signal(signal.SIGPIPE, signal.SIG_DFL)

    def start(_: Any) -> None:
        _.kernel.yield_("write")

    def write(_: Any) -> None:
        seen.append(signal.getsignal(signal.SIGPIPE))
        r, w = os.pipe()
        os.close(r)
        try:
            os.write(w, b"x")
        except BrokenPipeError:
            seen.append("EPIPE")
        finally:
            os.close(w)

    try:
        Session.create(inline_states={"_start": start, "write": write})
        poe_kernel.run()
    finally:
        signal.signal(signal.SIGPIPE, saved)
    assert seen == [signal.SIG_IGN, "EPIPE"]


def test_callable_subscribers_hear_the_same_broadcast_as_watchers() -> None:
    """Code that is not a session (a test, an asyncio program) observes a
    daemon's signals on the pyee bus."""
    log: Log = []
    heard: list[tuple[Any, ...]] = []

    first: list[Any] = []

    def fn(*args: Any) -> None:
        heard.append(args)

    def bad(*args: Any) -> None:
        raise RuntimeError("a broken subscriber must not break the kernel")

    def start(_: Any) -> None:
        _.kernel.alias_set("daemon")
        _.kernel.yield_("report")

    def report(_: Any) -> None:
        _.kernel.signal(_.kernel, "daemon_child", "request", 1234)
        _.kernel.signal(_.kernel, "daemon_child", "wait", 1234)

    tree("W", log, watch=("daemon_child",))
    Session.create(inline_states={"_start": start, "report": report})
    poe_kernel.events.on("daemon_child", bad)
    poe_kernel.events.on("daemon_child", fn)
    poe_kernel.events.once("daemon_child", lambda *a: first.append(a[0]))
    try:
        poe_kernel.run()
    finally:
        poe_kernel.events.remove_listener("daemon_child", fn)
        poe_kernel.events.remove_listener("daemon_child", bad)
    watcher_saw = [e[2][:-1] for e in log if e[0] == "sig"]
    assert watcher_saw == [("daemon_child", "request", 1234), ("daemon_child", "wait", 1234)]
    assert heard == watcher_saw  # a failing subscriber before it did not matter
    assert first == ["daemon_child"]  # pyee's once() means once
    assert poe_kernel.events.listeners("daemon_child") == []
    assert poe_kernel.signal_watchers("daemon_child") == {}


def test_restore_os_signals_leaves_nothing_behind() -> None:
    """What the clean_kernel fixture relies on: no handler or wakeup fd leaks."""

    def start(_: Any) -> None:
        _.kernel.alias_set("A")
        _.kernel.sig("USR2", "x")
        _.kernel.sig("CHLD", "x")

    before = signal.getsignal(signal.SIGUSR2), signal.getsignal(signal.SIGCHLD)
    Session.create(inline_states={"_start": start})
    assert signal.getsignal(signal.SIGUSR2) not in (before[0], None)
    poe_kernel.reset()
    assert (signal.getsignal(signal.SIGUSR2), signal.getsignal(signal.SIGCHLD)) == before
    assert signal.set_wakeup_fd(-1) == -1
    wait_until(lambda: not poe_kernel.introspection.caught_signals(), 1, "no OS handlers left")
