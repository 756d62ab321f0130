"""Session lifetime and errors (POE-SEMANTICS 1.1, 1.8, 1.10, 3, 6)."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from kernelish import ARG0, ARG1, ARG2, KERNEL, SENDER, SESSION, Session, poe_kernel


def tracing(trace: list[Any], name: str, **states: Any) -> dict[str, Any]:
    """Inline states that record (name, event, args) for the lifecycle events."""

    def rec(event: str) -> Any:
        def handler(_: Any) -> None:
            trace.append((name, event, *_[ARG0:]))

        return handler

    base = {e: rec(e) for e in ("_stop", "_child", "_parent")}
    base.update(states)
    return base


def test_post_from_stop_is_lost_but_call_works() -> None:
    trace: list[Any] = []
    Session.create(
        inline_states={
            "_start": lambda _: _[KERNEL].alias_set("other"),
            "ev": lambda _: trace.append(("ev", _[ARG0])),
            "release": lambda _: _[KERNEL].alias_remove("other"),
        }
    )

    def stop(_: Any) -> None:
        k = _[KERNEL]
        assert k.post("other", "ev", "posted") is True
        k.call("other", "ev", "called")
        k.post("other", "release")  # lost too: "other" keeps its alias...

    Session.create(inline_states={"_start": lambda _: None, "_stop": stop})
    poe_kernel.run()  # ...until IDLE ends it
    assert trace == [("ev", "called")]


def test_sent_events_keep_sender_alive() -> None:
    trace: list[Any] = []
    Session.create(
        inline_states={
            "_start": lambda _: _[KERNEL].delay("later", 0.02),
            "later": lambda _: None,
            "msg": lambda _: trace.append("msg"),
        }
    )
    receiver = max(s.ID for s in poe_kernel.introspection.sessions())

    def start(_: Any) -> None:
        _[KERNEL].post(receiver, "msg")

    Session.create(inline_states={"_start": start, "_stop": lambda _: trace.append("_stop")})
    poe_kernel.run_one_timeslice()
    # The message was delivered in this slice; the sender stops at its end.
    assert trace == ["msg", "_stop"]
    poe_kernel.run()


def test_stop_at_end_of_slice_and_rescue() -> None:
    trace: list[Any] = []

    def a(_: Any) -> None:
        trace.append("a")
        _[KERNEL].post(b, "save_a")  # b rescues a later in the same slice

    def save(_: Any) -> None:
        trace.append("save")
        _[KERNEL].post(_[SENDER], "rescued")

    b = Session.create(inline_states={"_start": lambda _: None, "save_a": save})
    Session.create(
        inline_states={
            "_start": lambda _: _[KERNEL].yield_("a"),
            "a": a,
            "rescued": lambda _: trace.append("rescued"),
            "_stop": lambda _: trace.append("stop_a"),
        }
    )
    poe_kernel.run()
    assert trace == ["a", "save", "rescued", "stop_a"]


def test_children_are_reparented_to_grandparent() -> None:
    trace: list[Any] = []
    ids: dict[str, Any] = {}

    def grandchild_start(_: Any) -> None:
        ids["gc"] = _[SESSION]
        _[KERNEL].alias_set("gc")  # outlives its parent

    def child_start(_: Any) -> None:
        ids["c"] = _[SESSION]
        Session.create(inline_states=tracing(trace, "gc", _start=grandchild_start))
        _[KERNEL].delay("die", 0.001)

    def gp_start(_: Any) -> None:
        ids["gp"] = _[SESSION]
        _[KERNEL].alias_set("gp")
        Session.create(inline_states=tracing(trace, "c", _start=child_start, die=lambda _: None))

    def drop_all(_: Any) -> None:
        _[KERNEL].alias_remove("gp")
        _[KERNEL].post("gc", "drop")

    Session.create(inline_states=tracing(trace, "gp", _start=gp_start, drop=drop_all))
    gc_drop = ids["gc"]._states
    gc_drop["drop"] = (lambda _: _[KERNEL].alias_remove("gc"), None)
    trace.clear()
    # A child holds its parent (3.1), so only a forced stop ends a session
    # that has children: run POE's stop procedure on c directly.
    gp, c, gc = ids["gp"], ids["c"], ids["gc"]
    poe_kernel._core.stop_session(c, poe_kernel)  # the procedure itself
    assert trace == [
        ("gp", "_child", "gain", gc, None),
        ("gc", "_parent", c, gp),
        ("c", "_stop"),
        ("gp", "_child", "lose", c, None),
    ]
    assert gc._parent is gp
    assert list(gp._children) == [gc]
    trace.clear()
    poe_kernel.post("gp", "drop")
    poe_kernel.run()
    assert ("gc", "_stop") in trace
    assert trace[-1] == ("gp", "_stop")


def test_extref_keeps_alive_and_refcount_return_values() -> None:
    trace: list[Any] = []
    out: dict[str, Any] = {}

    def start(_: Any) -> None:
        k, sid = _[KERNEL], _[SESSION].ID
        out["inc"] = [k.refcount_increment(sid, "a"), k.refcount_increment(sid, "a")]
        k.delay("release", 0.001)

    def release(_: Any) -> None:
        k, sid = _[KERNEL], _[SESSION].ID
        out["dec"] = [k.refcount_decrement(sid, "a"), k.refcount_decrement(sid, "a")]
        k.last_error = 0
        out["bad"] = k.refcount_increment(999999, "a"), k.last_error

    Session.create(
        inline_states={"_start": start, "release": release, "_stop": lambda _: trace.append(1)}
    )
    poe_kernel.run()
    assert out == {"inc": [1, 2], "dec": [1, 0], "bad": (None, errno.ESRCH)}
    assert trace == [1]


def test_detach_myself_and_detach_child() -> None:
    trace: list[Any] = []
    out: dict[str, Any] = {}

    def kid_start(_: Any) -> None:
        _[KERNEL].alias_set(f"kid{_[ARG0]}")

    def detach_me(_: Any) -> None:
        k = _[KERNEL]
        out["me"] = k.detach_myself()
        k.last_error = 0
        out["again"] = (k.detach_myself(), k.last_error)
        k.alias_remove("kid1")

    def parent_start(_: Any) -> None:
        k = _[KERNEL]
        out["k1"] = Session.create(
            inline_states=tracing(trace, "k1", _start=kid_start, go=detach_me), args=[1]
        )
        out["k2"] = Session.create(inline_states=tracing(trace, "k2", _start=kid_start), args=[2])
        out["child"] = k.detach_child(out["k2"])
        k.last_error = 0
        out["not_mine"] = (k.detach_child(out["k2"]), k.last_error)
        out["unknown"] = (k.detach_child("nobody"), k.last_error)
        k.post(out["k1"], "go")

    p = Session.create(inline_states=tracing(trace, "p", _start=parent_start))
    poe_kernel.run_one_timeslice()
    k1, k2 = out["k1"], out["k2"]
    assert out["child"] is True
    assert out["not_mine"] == (False, errno.EPERM)
    assert out["unknown"] == (False, errno.ESRCH)
    assert out["me"] is True
    assert out["again"] == (False, errno.EPERM)
    assert trace[:6] == [
        ("p", "_child", "create", k1, None),
        ("p", "_child", "create", k2, None),
        ("p", "_child", "lose", k2, None),
        ("k2", "_parent", p, poe_kernel),
        ("p", "_child", "lose", k1, None),
        ("k1", "_parent", p, poe_kernel),
    ]
    assert k1._parent is poe_kernel
    assert k2._parent is poe_kernel
    poe_kernel.post(k2, "unalias")
    k2._states["unalias"] = (lambda _: _[KERNEL].alias_remove("kid2"), None)
    poe_kernel.run()


def test_detach_myself_in_start_sends_no_child_events() -> None:
    trace: list[Any] = []

    def kid_start(_: Any) -> None:
        _[KERNEL].detach_myself()

    def parent_start(_: Any) -> None:
        Session.create(inline_states=tracing(trace, "k", _start=kid_start))

    p = Session.create(inline_states=tracing(trace, "p", _start=parent_start))
    assert trace == [("k", "_parent", p, poe_kernel)]
    poe_kernel.run()


def test_stop_delivers_stop_to_all_and_run_returns_and_runs_again() -> None:
    trace: list[Any] = []

    def stopper(_: Any) -> None:
        trace.append(("stopper_sender_check", None))
        _[KERNEL].stop()
        _[KERNEL].yield_("never")  # the kernel is active now: ignored

    def start(_: Any) -> None:
        _[KERNEL].alias_set("a")
        Session.create(
            inline_states={
                "_start": lambda _: _[KERNEL].alias_set("kid"),
                "_stop": lambda _: trace.append(("kid_stop", _[SENDER])),
            }
        )
        _[KERNEL].yield_("stopper")

    a = Session.create(
        inline_states={
            "_start": start,
            "stopper": stopper,
            "never": lambda _: trace.append("never"),
            "_stop": lambda _: trace.append(("a_stop", _[SENDER])),
        }
    )
    poe_kernel.run()
    assert trace == [("stopper_sender_check", None), ("kid_stop", a), ("a_stop", a)]
    assert poe_kernel.post("a", "x") is False
    # A new session after run() returned: the kernel runs again.
    again: list[int] = []
    s = Session.create(
        inline_states={"_start": lambda _: _[KERNEL].yield_("x"), "x": lambda _: again.append(1)}
    )
    assert s is not None
    assert s.ID > a.ID
    poe_kernel.run()
    assert again == [1]
    assert poe_kernel.run_one_timeslice() is False


# -- DIE ---------------------------------------------------------------------


def test_die_handled_carries_on() -> None:
    trace: list[Any] = []
    out: dict[str, Any] = {}

    def boom(_: Any) -> None:
        raise RuntimeError("kaboom")

    def on_die(_: Any) -> None:
        out["name"] = _[ARG0]
        out["info"] = _[ARG1]
        out["sender"] = _[SENDER]
        _[KERNEL].sig_handled()

    def start(_: Any) -> None:
        _[KERNEL].sig("DIE", "on_die")
        _[KERNEL].yield_("boom")
        _[KERNEL].delay("after", 0.001)

    s = Session.create(
        inline_states={
            "_start": start,
            "boom": boom,
            "on_die": on_die,
            "after": lambda _: trace.append("after"),
            "_stop": lambda _: trace.append("_stop"),
        }
    )
    poe_kernel.run()
    assert trace == ["after", "_stop"]
    info = out["info"]
    assert out["name"] == "DIE"
    assert out["sender"] is poe_kernel
    assert set(info) == {
        "error_str", "error", "dest_session", "source_session", "event", "file", "line",
        "from_state",
    }  # fmt: skip
    assert info["error_str"] == "RuntimeError: kaboom"
    assert isinstance(info["error"], RuntimeError)
    assert info["dest_session"] is s
    assert info["source_session"] is s
    assert info["event"] == "boom"
    assert info["file"] == __file__
    assert isinstance(info["line"], int)
    assert info["from_state"] == "_start"


def test_die_unhandled_stops_everyone_and_run_reraises() -> None:
    trace: list[Any] = []

    def boom(_: Any) -> None:
        raise ValueError("unhandled kaboom")

    Session.create(
        inline_states={
            "_start": lambda _: _[KERNEL].alias_set("bystander"),
            "_stop": lambda _: trace.append("bystander_stop"),
        }
    )
    Session.create(
        inline_states={
            "_start": lambda _: _[KERNEL].yield_("boom"),
            "boom": boom,
            "_stop": lambda _: trace.append("boom_stop"),
        }
    )
    with pytest.raises(ValueError, match="unhandled kaboom"):
        poe_kernel.run()
    assert sorted(trace) == ["boom_stop", "bystander_stop"]
    assert not poe_kernel.introspection.sessions()


def test_exception_in_call_to_other_session() -> None:
    trace: list[Any] = []

    def boom(_: Any) -> None:
        raise KeyError("in call")

    def on_die(_: Any) -> None:
        trace.append(("die", _[ARG1]["event"]))
        _[KERNEL].sig_handled()

    Session.create(
        inline_states={
            "_start": lambda _: (_[KERNEL].alias_set("svc"), _[KERNEL].sig("DIE", "on_die")),
            "boom": boom,
            "on_die": on_die,
            "bye": lambda _: _[KERNEL].alias_remove("svc"),
        }
    )

    def start(_: Any) -> None:
        trace.append(("ret", _[KERNEL].call("svc", "boom")))
        trace.append("after call")
        _[KERNEL].post("svc", "bye")

    Session.create(inline_states={"_start": start})
    assert trace == [("ret", None), "after call"]
    poe_kernel.run()
    assert trace[2:] == [("die", "boom")]


def test_error_in_stop_is_stored_and_reraised_at_end_of_run() -> None:
    trace: list[Any] = []

    def bad_stop(_: Any) -> None:
        raise RuntimeError("stop failed")

    Session.create(inline_states={"_start": lambda _: None, "_stop": bad_stop})
    Session.create(
        inline_states={
            "_start": lambda _: _[KERNEL].delay("late", 0.02),
            "late": lambda _: trace.append("late timer still fired"),
        }
    )
    with pytest.raises(RuntimeError, match="stop failed"):
        poe_kernel.run()
    assert trace == ["late timer still fired"]


def test_child_lose_gets_stop_return_value() -> None:
    trace: list[Any] = []

    def parent_start(_: Any) -> None:
        _[KERNEL].alias_set("p")
        Session.create(inline_states={"_start": lambda _: None, "_stop": lambda _: "bye"})

    def child(_: Any) -> None:
        trace.append((_[ARG0], _[ARG2]))
        if _[ARG0] == "lose":
            _[KERNEL].alias_remove("p")

    Session.create(inline_states={"_start": parent_start, "_child": child})
    poe_kernel.run()
    assert trace == [("create", None), ("lose", "bye")]
