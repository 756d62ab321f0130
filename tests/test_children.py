"""Child processes (POE-SEMANTICS 4.5): reaping on SIGCHLD, ``sig_child``
events before the CHLD signal, pid watches keeping sessions alive.

Every child here is a real ``os.fork()`` that ends in ``os._exit`` in a
``finally``; the parent checks /proc (through psutil) that none is left a
zombie.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

from kernelish import Session, exit_code, exit_signal, poe_kernel

from ._support import ProcessReaper, zombies_of

Log = list[tuple[Any, ...]]


def fork(body: Callable[[], int] | None = None) -> int:
    """Fork a child that runs ``body`` (default: exit 0) and never returns."""
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            code = body() if body is not None else 0
        finally:
            os._exit(code)
    return pid


def test_exit_status_helpers() -> None:
    assert exit_code(3 << 8) == 3 and exit_signal(3 << 8) is None
    assert exit_code(signal.SIGKILL) is None and exit_signal(signal.SIGKILL) == signal.SIGKILL


def test_200_children_all_reaped_sig_child_before_chld(procs: ProcessReaper) -> None:
    n = 200
    log: Log = []
    codes: dict[int, int] = {}
    timing: dict[str, float] = {}

    def start(_: Any) -> None:
        _.kernel.sig("CHLD", "chld", "blanket")
        timing["start"] = time.monotonic()
        for i in range(n):
            pid = fork(lambda i=i: i)  # type: ignore[misc]
            procs.add(pid)
            codes[pid] = i
            _.kernel.sig_child(pid, "reaped", "extra", i)
        timing["forked"] = time.monotonic()

    def reaped(_: Any) -> None:
        log.append(("reaped", *_.args))
        if len(log) and sum(1 for e in log if e[0] == "reaped") == n:
            timing["reaped"] = time.monotonic()

    def chld(_: Any) -> None:
        log.append(("chld", *_.args, _.sender))

    def stop(_: Any) -> None:
        log.append(("stop",))

    Session.create(inline_states={"_start": start, "reaped": reaped, "chld": chld, "_stop": stop})
    poe_kernel.run()

    reaped_ev = [e for e in log if e[0] == "reaped"]
    chld_ev = [e for e in log if e[0] == "chld"]
    assert len(reaped_ev) == n
    for e in reaped_ev:
        _, name, pid, status, extra, i = e
        assert (name, extra) == ("CHLD", "extra")
        assert codes[pid] == i and exit_code(status) == i and exit_signal(status) is None
    # The blanket CHLD signal: ARG1 pid, ARG2 raw status, then the watcher's extra.
    assert {e[2] for e in chld_ev} == set(codes)
    for e in chld_ev:
        assert e[1] == "CHLD" and e[4] == "blanket" and e[5] is poe_kernel
        assert exit_code(e[3]) == codes[e[2]]
    # For each pid, sig_child's event comes first.
    position = {(e[0], e[2]): i for i, e in enumerate(log) if e[0] in ("reaped", "chld")}
    assert all(position[("reaped", pid)] < position[("chld", pid)] for pid in codes)
    # The pid watches kept the session; it went when the last was reaped.
    assert log[-1] == ("stop",)
    assert zombies_of(os.getpid()) == []
    assert not poe_kernel.introspection.watched_pids()
    print(
        f"\n{n} children: forked in {timing['forked'] - timing['start']:.3f}s, "
        f"all reaped {timing['reaped'] - timing['start']:.3f}s after the first fork"
    )


def test_sig_child_keeps_its_session_alive_until_reaped(procs: ProcessReaper) -> None:
    """W's only reference is the pid watch; O checks W is alive over many
    timeslices, then lets the child exit."""
    log: Log = []
    go_r, go_w = os.pipe()
    child: list[int] = []
    watcher: list[Session] = []
    before = signal.getsignal(signal.SIGCHLD)

    def w_start(_: Any) -> None:
        watcher.append(_.session)
        pid = fork(lambda: len(os.read(go_r, 1)) - 1)
        procs.add(pid)
        child.append(pid)
        _.kernel.sig_child(pid, "reaped")

    def reaped(_: Any) -> None:
        log.append(("reaped", _.args[1] == child[0], exit_code(_.args[2])))
        # The last pid watch went with the reap: so did the SIGCHLD handler.
        log.append(("handler", signal.getsignal(signal.SIGCHLD) == before))

    def w_stop(_: Any) -> None:
        log.append(("W stop",))

    def o_start(_: Any) -> None:
        _.heap["n"] = 0
        _.kernel.yield_("check")

    def check(_: Any) -> None:
        alive = watcher[0] in _.kernel.introspection.sessions()
        log.append(("alive", alive))
        _.heap["n"] += 1
        if _.heap["n"] < 20:
            _.kernel.yield_("check")
        else:
            os.write(go_w, b"g")

    Session.create(inline_states={"_start": w_start, "reaped": reaped, "_stop": w_stop})
    Session.create(inline_states={"_start": o_start, "check": check})
    try:
        poe_kernel.run()
    finally:
        os.close(go_r)
        os.close(go_w)
    assert log == [("alive", True)] * 20 + [
        ("reaped", True, 0),
        ("handler", True),
        ("W stop",),
    ]
    assert zombies_of(os.getpid()) == []


def test_child_killed_by_a_signal(procs: ProcessReaper) -> None:
    log: Log = []
    hold_r, hold_w = os.pipe()

    def start(_: Any) -> None:
        pid = fork(lambda: len(os.read(hold_r, 1)))
        procs.add(pid)
        _.kernel.sig_child(pid, "reaped")
        _.kernel.sig_child(fork(lambda: 3), "reaped")
        os.kill(pid, signal.SIGKILL)

    def reaped(_: Any) -> None:
        status = _.args[2]
        log.append((exit_code(status), exit_signal(status)))

    Session.create(inline_states={"_start": start, "reaped": reaped})
    try:
        poe_kernel.run()
    finally:
        os.close(hold_r)
        os.close(hold_w)
    assert sorted(log, key=str) == sorted([(None, signal.SIGKILL), (3, None)], key=str)
    assert zombies_of(os.getpid()) == []


def test_sig_child_without_event_cancels_only_its_own_watch(procs: ProcessReaper) -> None:
    log: Log = []
    go_r, go_w = os.pipe()
    pids: list[int] = []

    def a_start(_: Any) -> None:
        _.kernel.alias_set("A")
        pid = fork(lambda: len(os.read(go_r, 1)) + 4)
        procs.add(pid)
        pids.append(pid)
        _.kernel.sig_child(pid, "reaped", "A")

    def b_start(_: Any) -> None:
        _.kernel.sig_child(pids[0], "reaped", "B")
        _.kernel.sig_child(pids[0])  # B stops watching: no refcount underflow
        _.kernel.sig_child(pids[0])
        _.kernel.sig_child(12345678)  # never watched

    def reaped(_: Any) -> None:
        log.append(("reaped", _.args[3], exit_code(_.args[2])))
        _.kernel.alias_remove("A")

    def a_go(_: Any) -> None:
        os.write(go_w, b"g")

    Session.create(inline_states={"_start": a_start, "reaped": reaped, "go": a_go})
    Session.create(inline_states={"_start": b_start, "reaped": reaped})
    poe_kernel.post("A", "go")
    try:
        poe_kernel.run()
    finally:
        os.close(go_r)
        os.close(go_w)
    assert log == [("reaped", "A", 5)]
    assert zombies_of(os.getpid()) == []


def test_sig_child_on_a_pid_that_is_not_ours_does_not_block_idle() -> None:
    """POE: a watch on a pid that is not our child does not prevent idleness."""
    log: Log = []

    def start(_: Any) -> None:
        _.kernel.sig_child(1, "reaped")  # init is nobody's child

    def stop(_: Any) -> None:
        log.append(("stop",))

    Session.create(inline_states={"_start": start, "reaped": lambda _: None, "_stop": stop})
    started = time.monotonic()
    poe_kernel.run()
    assert time.monotonic() - started < 2
    assert log == [("stop",)]


def test_chld_watcher_alone_reaps_and_sigchld_handler_goes_with_it(
    procs: ProcessReaper,
) -> None:
    log: Log = []
    before = signal.getsignal(signal.SIGCHLD)

    def start(_: Any) -> None:
        _.kernel.sig("CHLD", "chld")
        _.kernel.alias_set("A")
        log.append(("installed", signal.getsignal(signal.SIGCHLD) is not before))
        procs.add(fork(lambda: 9))

    def chld(_: Any) -> None:
        log.append(("chld", exit_code(_.args[2])))
        _.kernel.sig("CHLD")
        log.append(("installed", signal.getsignal(signal.SIGCHLD) is not before))
        _.kernel.alias_remove("A")

    Session.create(inline_states={"_start": start, "chld": chld})
    poe_kernel.run()
    assert log == [("installed", True), ("chld", 9), ("installed", False)]
    assert zombies_of(os.getpid()) == []


def test_back_to_back_runs_each_reap_at_once(procs: ProcessReaper) -> None:
    """A second run() must install SIGCHLD again: the child's exit wakes the
    loop at once, not at the one-second safety poll."""
    for code in (5, 6):
        log: Log = []

        def start(_: Any, code: int = code) -> None:
            _.kernel.sig_child(fork(lambda: code), "reaped")

        def reaped(_: Any, log: Log = log) -> None:
            log.append((exit_code(_.args[2]),))

        Session.create(inline_states={"_start": start, "reaped": reaped})
        started = time.monotonic()
        poe_kernel.run()
        elapsed = time.monotonic() - started
        assert log == [(code,)]
        assert elapsed < 0.5, f"run {code} took {elapsed:.2f}s: SIGCHLD was not heard"
    assert zombies_of(os.getpid()) == []
