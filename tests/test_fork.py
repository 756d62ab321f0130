"""Fork safety (POE-SEMANTICS 4.8 and issue 3): after ``os.fork()`` from a
handler, parent and child each run their own kernel.

Children report to the parent through pipes (one JSON line) or their exit
code; the parent asserts.  A child never returns into pytest: it ends with
``os._exit`` (and the run() of every test is wrapped so an escaped child
exits too).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kernelish import Session, exit_code, exit_signal, poe_kernel

from ._support import ProcessReaper, zombies_of

Log = list[tuple[Any, ...]]


def epoll_targets(epfd: int, pid: str = "self") -> set[int]:
    """Inodes of the files an epoll set watches, from /proc/<pid>/fdinfo."""
    with open(f"/proc/{pid}/fdinfo/{epfd}") as f:
        return {
            int(field[4:], 16)
            for line in f
            if line.startswith("tfd:")
            for field in line.split()
            if field.startswith("ino:")
        }


def inode(fd: int) -> int:
    return os.fstat(fd).st_ino


@contextmanager
def run_guard() -> Iterator[None]:
    """Whatever happens, a forked child leaves through os._exit."""
    parent = os.getpid()
    try:
        yield
    finally:
        if os.getpid() != parent:
            os._exit(70)


def read_lines(fd: int, buf: bytearray) -> list[Any] | None:
    """Read what is there; return complete JSON lines, or None at EOF."""
    data = os.read(fd, 65536)
    if not data:
        return None
    buf += data
    lines = []
    while b"\n" in buf:
        line, _, rest = bytes(buf).partition(b"\n")
        buf[:] = rest
        lines.append(json.loads(line))
    return lines


def test_fork_in_a_handler_leaves_two_independent_kernels(procs: ProcessReaper) -> None:
    """Fork with events queued, a pipe and USR1 watched.  Each process then
    watches its own pipe; each gets the USR1 the other sends it and never its
    own; the child unwatching the shared pipe does not touch the parent's
    epoll set; the child has a new kernel ID, selector and wakeup pipe."""
    xr, xw = os.pipe()  # watched before the fork, by both
    rr, rw = os.pipe()  # child -> parent reports
    cr, cw = os.pipe()  # parent -> child commands
    mine_r, mine_w = os.pipe()  # after the fork: the parent's own pipe...
    theirs_r, theirs_w = os.pipe()  # ... and the child's
    ino = {"x": inode(xr), "c": inode(cr), "mine": inode(mine_r), "theirs": inode(theirs_r)}
    parent_pid = os.getpid()
    plog: Log = []
    report: dict[str, Any] = {}

    def start(_: Any) -> None:
        _.kernel.alias_set("S")
        _.kernel.sig("USR1", "usr1")
        _.kernel.select_read(xr, "x_ready")
        _.kernel.yield_("do_fork")

    def do_fork(_: Any) -> None:
        h = _.heap
        for i in range(3):
            _.kernel.yield_("queued", i)
        h["id_before"] = _.kernel.ID
        h["wakeup_before"] = inode(_.kernel.introspection.wakeup_fd())
        h["selector_before"] = _.kernel.io.selector
        pid = os.fork()
        if pid == 0:
            child_setup(_)
            return
        os.kill(pid, signal.SIGUSR1)  # before the child's first timeslice
        procs.add(pid)
        h.update(role="parent", child=pid, queued=[], usr1=0, x=b"", buf=bytearray())
        _.kernel.sig_child(pid, "child_gone")
        os.close(rw)
        os.close(cr)
        _.kernel.select_read(rr, "from_child")
        _.kernel.select_read(mine_r, "own_ready")
        os.write(mine_w, b"p")
        _.kernel.delay("deadline", 15)

    def child_setup(_: Any) -> None:
        h = _.heap
        h.update(role="child", queued=[], usr1=0, own=0, x=0)
        os.close(rr)
        os.close(cw)
        _.kernel.select_read(xr)  # must not unwatch it in the parent
        _.kernel.select_read(cr, "command")
        _.kernel.select_read(theirs_r, "own_ready")
        os.write(theirs_w, b"c")

    def queued(_: Any) -> None:
        _.heap["queued"].append(_.args[0])

    def own_ready(_: Any) -> None:
        data = os.read(_.args[0], 10)  # stays watched: in the epoll set at the end
        if _.heap["role"] == "child":
            _.heap["own"] += 1
        else:
            plog.append(("own", data))

    def usr1(_: Any) -> None:
        h = _.heap
        h["usr1"] += 1
        if h["role"] == "child":
            os.write(rw, json.dumps({"what": "usr1", "n": h["usr1"]}).encode() + b"\n")
        else:
            plog.append(("usr1", h["usr1"]))
            os.write(cw, b"f")

    def command(_: Any) -> None:
        cmd = os.read(cr, 1)
        k, h = _.kernel, _.heap
        if cmd == b"g":  # the parent has checked its USR1 count: signal it
            os.kill(parent_pid, signal.SIGUSR1)
            return
        try:  # b"f" (or EOF): the final report
            out = {
                "what": "final",
                "pid": os.getpid(),
                "id": k.ID,
                "id_before": h["id_before"],
                "queued": h["queued"],
                "usr1": h["usr1"],
                "own": h["own"],
                "same_selector_object": k.io.selector is h["selector_before"],
                "epoll": sorted(epoll_targets(k.io.selector.fileno())),
                "wakeup": inode(k.introspection.wakeup_fd()),
                "wakeup_before": h["wakeup_before"],
                "pid_watchers": k.introspection.watched_pids(),
            }
            os.write(rw, json.dumps(out).encode() + b"\n")
        finally:
            os._exit(0)

    def from_child(_: Any) -> None:
        k, h = _.kernel, _.heap
        lines = read_lines(rr, h["buf"])
        if lines is None:
            plog.append(("eof",))
            k.select_read(rr)
            return
        for msg in lines:
            if msg["what"] == "usr1":
                # The child got the signal we sent right after fork(); we
                # must not have seen it.  Now write the shared pipe (the
                # child unwatched it) and ask the child to signal us.
                plog.append(("child usr1", msg["n"], h["usr1"]))
                os.write(xw, b"x")
                os.write(cw, b"g")
            else:
                report.update(msg)
                report["parent_epoll"] = sorted(epoll_targets(k.io.selector.fileno()))

    def x_ready(_: Any) -> None:
        _.heap["x"] += os.read(xr, 10)
        plog.append(("x", _.heap["x"]))  # stays watched (see the epoll check)

    def child_gone(_: Any) -> None:
        plog.append(("child exit", exit_code(_.args[2])))
        k = _.kernel
        k.sig("USR1")
        for fd in (rr, xr, mine_r):
            k.select_read(fd)
        k.delay("deadline")
        k.alias_remove("S")

    def deadline(_: Any) -> None:
        plog.append(("deadline",))
        _.kernel.stop()

    states = {
        "_start": start,
        "do_fork": do_fork,
        "queued": queued,
        "own_ready": own_ready,
        "usr1": usr1,
        "command": command,
        "from_child": from_child,
        "x_ready": x_ready,
        "child_gone": child_gone,
        "deadline": deadline,
    }
    selector_before = poe_kernel.io.selector
    try:
        with run_guard():
            Session.create(inline_states=states)
            poe_kernel.run()
    finally:
        for fd in (xr, xw, rr, cw, mine_r, mine_w, theirs_r, theirs_w):
            os.close(fd)

    assert ("deadline",) not in plog, plog
    assert ("child usr1", 1, 0) in plog  # the child saw ours, we saw none yet
    assert ("own", b"p") in plog
    assert ("x", b"x") in plog  # the child's unwatch did not reach our epoll set
    assert plog[-1] == ("child exit", 0)
    assert [e for e in plog if e[0] == "usr1"] == [("usr1", 1)]  # only the child's
    assert report["what"] == "final", report
    assert report["usr1"] == 1  # only ours: the one it sent us was not seen
    assert report["queued"] == [0, 1, 2]  # queued events kept, as POE keeps them
    assert report["own"] == 1
    assert report["id"] != report["id_before"] and f"{report['pid']:08x}" in report["id"]
    assert report["id_before"] == poe_kernel.ID
    assert not report["same_selector_object"]
    assert poe_kernel.io.selector is selector_before
    assert report["wakeup"] != report["wakeup_before"]
    # The epoll sets hold different things: the child's its own pipe and its
    # command pipe, the parent's its own pipe and the shared one.
    child_set, parent_set = set(report["epoll"]), set(report["parent_epoll"])
    assert {ino["theirs"], ino["c"]} <= child_set and ino["x"] not in child_set
    assert {ino["mine"], ino["x"]} <= parent_set
    assert ino["theirs"] not in parent_set and ino["mine"] not in child_set
    assert report["wakeup"] in child_set and report["wakeup_before"] in parent_set
    assert report["pid_watchers"] == 0
    assert zombies_of(os.getpid()) == []


def test_a_signal_sent_right_after_fork_reaches_the_child(procs: ProcessReaper) -> None:
    """20 times: fork, and USR1 to the child at once.  The child's kernel must
    see it (it exits 0 from its USR1 handler); the parent, which watches USR1
    too, must see none."""
    n = 20
    log: Log = []

    def start(_: Any) -> None:
        _.kernel.sig("USR1", "usr1")
        _.heap.update(role="parent", n=0, usr1=0)
        _.kernel.delay("deadline", 15)
        _.kernel.yield_("spawn")

    def spawn(_: Any) -> None:
        pid = os.fork()
        if pid == 0:
            _.heap["role"] = "child"
            _.kernel.delay("deadline", 5)
            return
        os.kill(pid, signal.SIGUSR1)
        procs.add(pid)
        _.kernel.sig_child(pid, "reaped")
        _.heap["n"] += 1
        if _.heap["n"] < n:
            _.kernel.yield_("spawn")

    def usr1(_: Any) -> None:
        if _.heap["role"] == "child":
            os._exit(0)
        _.heap["usr1"] += 1

    def reaped(_: Any) -> None:
        status = _.args[2]
        log.append((exit_code(status), exit_signal(status)))
        if len(log) == n:
            _.kernel.delay("deadline")
            _.kernel.sig("USR1")

    def deadline(_: Any) -> None:
        if _.heap["role"] == "child":
            os._exit(3)  # the signal was lost
        for pid in procs.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(_: Any) -> None:
        log.append(("parent usr1", _.heap["usr1"]))

    states = {
        "_start": start,
        "spawn": spawn,
        "usr1": usr1,
        "reaped": reaped,
        "deadline": deadline,
        "_stop": stop,
    }
    with run_guard():
        Session.create(inline_states=states)
        poe_kernel.run()
    assert log[:-1] == [(0, None)] * n
    assert log[-1] == ("parent usr1", 0)
    assert zombies_of(os.getpid()) == []


def test_the_child_inherits_no_pid_watches(procs: ProcessReaper) -> None:
    """W's only reference is a sig_child watch on H.  In a forked child W must
    be collected at once (H is not the child's child); in the parent W lives
    until H is reaped."""
    hold_r, hold_w = os.pipe()
    rr, rw = os.pipe()
    log: Log = []
    sessions: dict[str, Any] = {}

    def w_start(_: Any) -> None:
        sessions["W"] = _.session
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                code = len(os.read(hold_r, 1)) + 10
            finally:
                os._exit(code)
        procs.add(pid)
        sessions["H"] = pid
        _.kernel.sig_child(pid, "h_gone")

    def h_gone(_: Any) -> None:
        log.append(("H reaped", exit_code(_.args[2])))

    def w_stop(_: Any) -> None:
        if os.getpid() == sessions.get("parent"):
            log.append(("W stop",))

    def t_start(_: Any) -> None:
        sessions["parent"] = os.getpid()
        _.kernel.yield_("do_fork")

    def do_fork(_: Any) -> None:
        pid = os.fork()
        if pid == 0:
            _.heap["checks"] = 0
            _.kernel.yield_("child_check")
            return
        procs.add(pid)
        os.close(rw)
        _.kernel.sig_child(pid, "c_gone")
        _.kernel.select_read(rr, "from_child")
        _.heap["buf"] = bytearray()

    def child_check(_: Any) -> None:
        k = _.kernel
        w = sessions["W"]
        alive = w in k.introspection.sessions()
        _.heap["checks"] += 1
        if alive and _.heap["checks"] < 5:
            k.yield_("child_check")
            return
        try:
            out = {
                "W_alive": alive,
                "checks": _.heap["checks"],
                "pid_watchers": k.introspection.watched_pids(),
                "sigchld_handler": signal.getsignal(signal.SIGCHLD) not in (None, 0),
            }
            os.write(rw, json.dumps(out).encode() + b"\n")
        finally:
            os._exit(0)

    def from_child(_: Any) -> None:
        lines = read_lines(rr, _.heap["buf"])
        if lines is None:
            _.kernel.select_read(rr)
            return
        log.append(("child", lines[0]))
        log.append(("W alive in parent", sessions["W"] in _.kernel.introspection.sessions()))
        os.write(hold_w, b"h")  # now let H go

    def c_gone(_: Any) -> None:
        log.append(("C reaped", exit_code(_.args[2])))

    Session.create(inline_states={"_start": w_start, "h_gone": h_gone, "_stop": w_stop})
    states = {
        "_start": t_start,
        "do_fork": do_fork,
        "child_check": child_check,
        "from_child": from_child,
        "c_gone": c_gone,
    }
    Session.create(inline_states=states)
    try:
        with run_guard():
            poe_kernel.run()
    finally:
        for fd in (hold_r, hold_w, rr):
            os.close(fd)
    child = next(e[1] for e in log if e[0] == "child")
    assert child == {"W_alive": False, "checks": 1, "pid_watchers": 0, "sigchld_handler": False}
    assert ("W alive in parent", True) in log
    assert ("C reaped", 0) in log
    assert log.index(("H reaped", 11)) < log.index(("W stop",))
    assert zombies_of(os.getpid()) == []


def test_has_forked_is_harmless(procs: ProcessReaper) -> None:
    rr, rw = os.pipe()
    seen: dict[str, Any] = {}

    def start(_: Any) -> None:
        k = _.kernel
        before = (k.ID, k.io.selector, k.introspection.wakeup_fd())
        k.has_forked()
        k.has_forked()
        seen["parent unchanged"] = (k.ID, k.io.selector, k.introspection.wakeup_fd()) == before
        pid = os.fork()
        if pid == 0:
            try:
                after_hook = (k.ID, k.io.selector, k.introspection.wakeup_fd())
                k.has_forked()
                k.has_forked()
                out = {
                    "unchanged": (k.ID, k.io.selector, k.introspection.wakeup_fd()) == after_hook,
                    "new_id": before[0] != k.ID,
                }
                os.write(rw, json.dumps(out).encode())
            finally:
                os._exit(0)
        procs.add(pid)
        seen["child"] = json.loads(os.read(rr, 1000))
        _, status = os.waitpid(pid, 0)
        seen["status"] = status

    try:
        with run_guard():
            Session.create(inline_states={"_start": start})
            poe_kernel.run()
    finally:
        os.close(rr)
        os.close(rw)
    assert seen == {
        "parent unchanged": True,
        "child": {"unchanged": True, "new_id": True},
        "status": 0,
    }


def test_a_child_names_its_kernel_by_its_own_id_only(procs: ProcessReaper) -> None:
    """The child's ID is made when first asked (the at-fork hook does not
    format it); the parent's ID never names the child's kernel."""
    rr, rw = os.pipe()
    seen: dict[str, Any] = {}

    def start(_: Any) -> None:
        k = _.kernel
        parent_id = k.ID
        pid = os.fork()
        if pid == 0:
            try:
                out = {
                    "parent's before": k.ID_id_to_session(parent_id) is None,
                    "mine": parent_id != k.ID and k.ID_id_to_session(k.ID) is k,
                    "parent's after": k.ID_id_to_session(parent_id) is None,
                    "repr": repr(k) == f"<Kernel {k.ID}>",
                    "pid": f"-{os.getpid():08x}-" in k.ID,
                }
                os.write(rw, json.dumps(out).encode())
            finally:
                os._exit(0)
        procs.add(pid)
        seen["child"] = json.loads(os.read(rr, 1000))
        seen["status"] = os.waitpid(pid, 0)[1]
        seen["parent"] = parent_id == k.ID and k.ID_id_to_session(parent_id) is k

    try:
        with run_guard():
            Session.create(inline_states={"_start": start})
            poe_kernel.run()
    finally:
        os.close(rr)
        os.close(rw)
    assert seen == {
        "child": {
            "parent's before": True,
            "mine": True,
            "parent's after": True,
            "repr": True,
            "pid": True,
        },
        "status": 0,
        "parent": True,
    }


def test_a_child_can_start_afresh_with_stop(procs: ProcessReaper) -> None:
    """POE's advice for a fresh kernel in a child: stop() clears what was
    inherited; new sessions then run, and run() returns in the child.  The
    parent's session goes on."""
    rr, rw = os.pipe()
    log: Log = []
    parent = os.getpid()
    out: dict[str, Any] = {}

    def start(_: Any) -> None:
        _.kernel.alias_set("P")
        _.kernel.delay("tick", 0.001)

    def tick(_: Any) -> None:
        pid = os.fork()
        if pid == 0:
            k = _.kernel
            k.stop()
            out["sessions_after_stop"] = len(k.introspection.sessions())
            Session.create(inline_states={"_start": fresh, "done": done})
            return
        procs.add(pid)
        _.kernel.sig_child(pid, "gone")
        _.kernel.select_read(rr, "report")

    def fresh(_: Any) -> None:
        _.kernel.delay("done", 0.001)

    def done(_: Any) -> None:
        out["fresh_ran"] = True

    def report(_: Any) -> None:
        log.append(("report", json.loads(os.read(rr, 1000))))
        _.kernel.select_read(rr)

    def gone(_: Any) -> None:
        log.append(("gone", exit_code(_.args[2])))
        _.kernel.alias_remove("P")

    try:
        with run_guard():
            states = {"_start": start, "tick": tick, "report": report, "gone": gone}
            Session.create(inline_states=states)
            poe_kernel.run()
            if os.getpid() != parent:
                try:
                    os.write(rw, json.dumps(out).encode())
                finally:
                    os._exit(0)
    finally:
        os.close(rr)
        os.close(rw)
    got = dict(log)
    assert got["report"] == {"sessions_after_stop": 0, "fresh_ran": True}
    assert got["gone"] == 0
    assert zombies_of(os.getpid()) == []
