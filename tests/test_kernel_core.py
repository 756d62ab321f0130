"""Kernel core: handler convention, Session.create, post/yield_/call, queue
order, aliases (POE-SEMANTICS 1.1, 1.2, 1.4, 1.6, 2.1-2.3, 5).

Order is checked with traces: every handler records ``(session, event,
args)`` and the whole list is compared with what POE produces.
"""

from __future__ import annotations

import errno
import sys
import time
from typing import Any

import pytest

from kernelish import (
    ARG0,
    ARG1,
    ARG2,
    ARG3,
    ARG9,
    CALLER_FILE,
    CALLER_LINE,
    CALLER_STATE,
    HEAP,
    KERNEL,
    OBJECT,
    SENDER,
    SESSION,
    STATE,
    Session,
    poe_kernel,
)


def recorder(trace: list[tuple[Any, ...]], label: str) -> Any:
    """A handler that records (label, state, args)."""

    def handler(_: Any) -> None:
        trace.append((label, _[STATE], _[ARG0:]))

    return handler


# -- handler convention ------------------------------------------------------


def test_handler_positions_and_attributes() -> None:
    seen: dict[str, Any] = {}

    def start(_: Any) -> None:
        seen["start"] = _[OBJECT], _[SESSION], _[KERNEL], _[HEAP], _[STATE], _[SENDER]
        seen["start_caller"] = _[CALLER_FILE], _[CALLER_LINE], _[CALLER_STATE]
        seen["start_args"] = _[ARG0:]
        seen["line"] = sys._getframe().f_lineno + 1
        _[KERNEL].yield_("ev", 1, 2)  # the line recorded as CALLER_LINE

    def ev(_: Any) -> None:
        kernel, heap = _[KERNEL, HEAP]
        seen["pair"] = kernel, heap
        seen["args"] = _[ARG0:]
        seen["padded"] = _[ARG0 : ARG3 + 1]
        seen["missing"] = _[ARG2], _[ARG9], _[6]
        seen["attrs"] = _.kernel, _.heap, _.session, _.sender, _.state, _.args, _.object
        seen["caller"] = _[CALLER_FILE], _[CALLER_LINE], _[CALLER_STATE]
        seen["len"] = len(_)

    heap = {"k": 1}
    s = Session.create(inline_states={"_start": start, "ev": ev}, heap=heap, args=["a", "b"])
    poe_kernel.run()
    assert seen["start"] == (None, s, poe_kernel, heap, "_start", poe_kernel)
    assert seen["start_caller"] == (None, None, None)
    assert seen["start_args"] == ("a", "b")
    assert seen["pair"] == (poe_kernel, heap)
    assert seen["args"] == (1, 2)
    assert seen["padded"] == (1, 2, None, None)
    assert seen["missing"] == (None, None, None)
    assert seen["attrs"] == (poe_kernel, heap, s, s, "ev", (1, 2), None)
    assert seen["caller"] == (__file__, seen["line"], "_start")
    assert seen["len"] == 12


class Greeter:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def _start(self, _: Any) -> None:
        self.calls.append(("_start", _[OBJECT] is self, _.state))
        _[KERNEL].yield_("hello", "x")

    def greet(self, _: Any) -> None:
        self.calls.append(("greet", _[OBJECT] is self, _.state, _[ARG0]))


class Package:
    calls: list[tuple[Any, ...]] = []

    @classmethod
    def _start(cls, _: Any) -> None:
        cls.calls.append(("_start", _[OBJECT]))
        _[KERNEL].yield_("pkg", 5)

    @classmethod
    def pkg(cls, _: Any) -> None:
        cls.calls.append(("pkg", _[OBJECT], _[ARG0]))


def test_object_states_list_and_dict_forms_and_package_states() -> None:
    g = Greeter()
    Session.create(object_states=[(g, ["_start"]), (g, {"hello": "greet"})])
    Package.calls = []
    Session.create(package_states=[(Package, ["_start", "pkg"])])
    poe_kernel.run()
    assert g.calls == [("_start", True, "_start"), ("greet", True, "hello", "x")]
    assert Package.calls == [("_start", Package), ("pkg", Package, 5)]


# -- Session.create ----------------------------------------------------------


def test_create_runs_start_inside_and_returns_session() -> None:
    trace: list[Any] = []

    def start(_: Any) -> str:
        trace.append(("_start", _[ARG0:], _[SENDER]))
        return "ret"

    s = Session.create(inline_states={"_start": start}, args=[1, 2])
    assert isinstance(s, Session)
    assert trace == [("_start", (1, 2), poe_kernel)]
    assert Session.create(inline_states={"_start": start}, args="solo") is not None
    assert trace[-1] == ("_start", ("solo",), poe_kernel)
    assert s.ID >= 1
    assert s.get_heap() == {}


def test_create_without_start_returns_none() -> None:
    assert Session.create(inline_states={"x": lambda _: None}) is None
    assert not poe_kernel.introspection.sessions()


def test_child_create_goes_to_parent_with_start_return() -> None:
    trace: list[Any] = []

    def parent_start(_: Any) -> None:
        kid = Session.create(inline_states={"_start": lambda _: "kid-ret"})
        trace.append(("created", kid))

    def child(_: Any) -> None:
        trace.append(("_child", _[ARG0], _[ARG1], _[ARG2], _[SENDER]))

    def parent(_: Any) -> None:
        trace.append(("_parent",))

    Session.create(inline_states={"_start": parent_start, "_child": child, "_parent": parent})
    poe_kernel.run()
    kid = trace[1][1]
    assert trace[0] == ("_child", "create", kid, "kid-ret", poe_kernel)
    assert trace[1] == ("created", kid)
    # _child('lose') when the kid stops; no _parent on creation.
    assert ("_parent",) not in trace
    assert trace[2][:3] == ("_child", "lose", kid)


def test_state_add_replace_remove_and_default() -> None:
    trace: list[Any] = []

    def start(_: Any) -> None:
        k = _[KERNEL]
        k.alias_set("st")
        assert k.state("a", recorder(trace, "first")) == 0
        k.yield_("a", 1)

    def a_replaced(_: Any) -> None:
        trace.append(("replaced", _[STATE]))

    def next_step(_: Any) -> None:
        k = _[KERNEL]
        k.state("a", a_replaced)
        k.call(_[SESSION], "a")
        assert k.state("a") == 0
        k.yield_("a", 2, 3)
        k.alias_remove("st")

    def default(_: Any) -> str:
        trace.append(("_default", _[STATE], _[ARG0], _[ARG1]))
        return "d"

    Session.create(inline_states={"_start": start, "_default": default, "after": next_step})
    poe_kernel.run_one_timeslice()
    assert trace == [("first", "a", (1,))]
    poe_kernel.post("st", "after")
    poe_kernel.run()
    assert trace[1:] == [
        ("replaced", "a"),
        ("_default", "_default", "a", [2, 3]),
        ("_default", "_default", "_stop", []),  # _default catches _stop too
    ]
    assert poe_kernel.state("x", lambda _: None) == errno.ESRCH  # outside any session


def test_kernel_state_with_object_method() -> None:
    g = Greeter()
    out: list[Any] = []

    def start(_: Any) -> None:
        _[KERNEL].state("hey", g, "greet")
        out.append(_[KERNEL].call(_[SESSION], "hey", 9))

    Session.create(inline_states={"_start": start})
    assert g.calls == [("greet", True, "hey", 9)]


# -- post / yield_ / call ----------------------------------------------------


def test_post_yield_call_return_values_and_last_error() -> None:
    out: dict[str, Any] = {}

    def start(_: Any) -> None:
        k = _[KERNEL]
        k.alias_set("me")
        out["post"] = k.post("me", "noop")
        out["yield"] = k.yield_("noop")
        out["bad_post"] = k.post("nobody", "noop")
        out["bad_post_err"] = k.last_error
        out["bad_call"] = k.call(12345, "noop")
        out["bad_call_err"] = k.last_error
        out["call"] = k.call(_[SESSION], "value", 4)
        out["call_err"] = k.last_error
        k.last_error = 99
        out["call_missing"] = k.call(_[SESSION], "no_such_handler")
        out["call_missing_err"] = k.last_error
        k.alias_remove("me")

    Session.create(
        inline_states={"_start": start, "noop": lambda _: None, "value": lambda _: _[ARG0] * 2}
    )
    poe_kernel.run()
    assert out == {
        "post": True,
        "yield": None,
        "bad_post": False,
        "bad_post_err": errno.ESRCH,
        "bad_call": None,
        "bad_call_err": errno.ESRCH,
        "call": 8,
        "call_err": 0,
        "call_missing": None,
        "call_missing_err": 0,
    }


def test_self_call_is_direct() -> None:
    out: dict[str, Any] = {}

    def start(_: Any) -> None:
        k = _[KERNEL]
        with pytest.raises(ValueError, match="direct"):
            k.call(_[SESSION], "boom")
        out["sender_state"] = k.call(_[SESSION], "who")

    def boom(_: Any) -> None:
        raise ValueError("direct")

    def who(_: Any) -> tuple[Any, ...]:
        return _[SENDER], _[STATE], _[KERNEL].get_active_event()

    s = Session.create(inline_states={"_start": start, "boom": boom, "who": who})
    assert out["sender_state"] == (s, "who", "_start")
    poe_kernel.run()  # no DIE: the exception went straight to the caller


def test_call_to_other_session_switches_active_and_returns_value() -> None:
    out: list[Any] = []

    def svc(_: Any) -> Any:
        k = _[KERNEL]
        return (_[ARG0] + 1, k.get_active_session(), k.get_active_event(), _[SENDER])

    b = Session.create(inline_states={"_start": lambda _: _[KERNEL].alias_set("svc"), "inc": svc})

    def start(_: Any) -> None:
        out.append(_[KERNEL].call("svc", "inc", 1))
        out.append(_[KERNEL].get_active_event())

    a = Session.create(inline_states={"_start": start})
    assert out == [(2, b, "inc", a), "_start"]
    assert poe_kernel.get_active_session() is poe_kernel
    assert poe_kernel.get_active_event() is None


def test_destination_resolution_order() -> None:
    got: list[Any] = []

    def start(_: Any) -> None:
        _[KERNEL].alias_set("named")
        _[KERNEL].alias_set("7777")

    s = Session.create(inline_states={"_start": start, "ev": lambda _: got.append(_[ARG0])})
    assert s is not None
    k = poe_kernel
    assert k.alias_resolve(s) is s
    assert k.alias_resolve(s.ID) is s
    assert k.alias_resolve(str(s.ID)) is s
    assert k.alias_resolve("named") is s
    assert k.alias_resolve("7777") is s  # no session 7777: the alias wins
    assert k.alias_resolve(k.ID) is k
    assert k.alias_resolve(k) is k
    assert k.alias_resolve("nope") is None
    for i, dest in enumerate((s, s.ID, str(s.ID), "named")):
        assert k.post(dest, "ev", i) is True
    assert k.post(k.ID, "ev", "to-kernel") is True
    assert k.post(k, "ev", "to-kernel") is True
    assert k.ID_id_to_session(s.ID) is s
    k.last_error = 0
    assert k.ID_id_to_session(999999) is None
    assert k.last_error == errno.ESRCH
    assert k.ID_session_to_id("named") == s.ID
    assert k.ID_session_to_id(k) == k.ID
    k.run()
    assert got == [0, 1, 2, 3]


def test_kernel_id_format() -> None:
    import os
    import socket

    parts = poe_kernel.ID.rsplit("-", 3)
    assert parts[0] == socket.gethostname()
    assert int(parts[2], 16) == os.getpid()
    assert all(len(p) == 8 for p in parts[1:])


# -- queue order -------------------------------------------------------------


def test_slices_a_b_then_c_then_d() -> None:
    trace: list[Any] = []

    def start(_: Any) -> None:
        _[KERNEL].yield_("a")
        _[KERNEL].yield_("b")

    def a(_: Any) -> None:
        trace.append("a")
        _[KERNEL].yield_("c")

    def c(_: Any) -> None:
        trace.append("c")
        _[KERNEL].yield_("d")

    Session.create(
        inline_states={
            "_start": start,
            "a": a,
            "b": lambda _: trace.append("b"),
            "c": c,
            "d": lambda _: trace.append("d"),
            "_stop": lambda _: trace.append("_stop"),
        }
    )
    results = []
    for _i in range(6):
        ok = poe_kernel.run_one_timeslice()
        results.append(ok)
        trace.append("|")
    assert trace == ["a", "b", "|", "c", "|", "d", "_stop", "|", "|", "|", "|"]
    assert results == [True, True, True, True, False, False]


def test_due_timers_overtake_queued_posts() -> None:
    trace: list[Any] = []

    def start(_: Any) -> None:
        k = _[KERNEL]
        k.yield_("y1")
        k.yield_("y2")
        k.alarm("past", time.time() - 5)
        k.yield_("y3")
        k.delay("d0", 0)
        k.yield_("y4")

    states = {n: recorder(trace, "s") for n in ("y1", "y2", "y3", "y4", "past", "d0")}
    Session.create(inline_states={"_start": start, **states})
    poe_kernel.run()
    assert [t[1] for t in trace] == ["past", "y1", "y2", "y3", "d0", "y4"]


def test_posts_fifo_across_sessions() -> None:
    trace: list[Any] = []
    a = Session.create(inline_states={"_start": lambda _: None, "ev": recorder(trace, "a")})
    b = Session.create(inline_states={"_start": lambda _: None, "ev": recorder(trace, "b")})
    for i in range(5):
        poe_kernel.post(a if i % 2 else b, "ev", i)
    poe_kernel.run()
    assert trace == [("b", "ev", (0,)), ("a", "ev", (1,)), ("b", "ev", (2,)),
                     ("a", "ev", (3,)), ("b", "ev", (4,))]  # fmt: skip


# -- aliases -----------------------------------------------------------------


def test_alias_return_codes_and_sorted_list() -> None:
    out: dict[str, Any] = {}

    def first(_: Any) -> None:
        k = _[KERNEL]
        out["set"] = k.alias_set("svc")
        out["again"] = k.alias_set("svc")
        k.alias_set("another")
        out["list"] = k.alias_list()
        k.refcount_increment(_[SESSION].ID, "hold")

    def second(_: Any) -> None:
        k = _[KERNEL]
        out["taken"] = k.alias_set("svc")
        out["remove_other"] = k.alias_remove("svc")
        out["remove_unknown"] = k.alias_remove("ghost")
        out["list_of_first"] = k.alias_list("svc")
        k.last_error = 0
        out["list_unknown"] = k.alias_list("ghost")
        out["list_unknown_err"] = k.last_error

    s1 = Session.create(inline_states={"_start": first})
    Session.create(inline_states={"_start": second})
    assert out == {
        "set": 0,
        "again": 0,
        "list": ["another", "svc"],
        "taken": errno.EEXIST,
        "remove_other": errno.EPERM,
        "remove_unknown": errno.ESRCH,
        "list_of_first": ["another", "svc"],
        "list_unknown": [],
        "list_unknown_err": errno.ESRCH,
    }
    assert s1 is not None
    assert s1._refcount() == 2 + 1 + 1  # two aliases, one tag, the GC marker
    poe_kernel.refcount_decrement(s1.ID, "hold")
    poe_kernel.run()


def test_alias_keeps_session_alive_and_dropping_it_ends_it() -> None:
    trace: list[Any] = []

    def start(_: Any) -> None:
        _[KERNEL].alias_set("keeper")
        _[KERNEL].delay("drop", 0.01)

    def drop(_: Any) -> None:
        trace.append("drop")
        assert _[KERNEL].alias_remove("keeper") == 0

    helper_ran = []

    def tick(_: Any) -> None:
        helper_ran.append(1)
        if len(helper_ran) < 3:
            _[KERNEL].yield_("tick")

    Session.create(
        inline_states={"_start": start, "drop": drop, "_stop": lambda _: trace.append("_stop")}
    )
    poe_kernel.run()
    assert trace == ["drop", "_stop"]


def test_alias_only_session_is_stopped_by_idle() -> None:
    trace: list[Any] = []

    def start(_: Any) -> None:
        _[KERNEL].alias_set("lonely")
        _[KERNEL].sig("IDLE", "idle")

    Session.create(
        inline_states={
            "_start": start,
            "idle": lambda _: trace.append(("idle", _[ARG0])),
            "_stop": lambda _: trace.append("_stop"),
        }
    )
    poe_kernel.run()  # returns: IDLE stops the alias-only session
    assert trace == [("idle", "IDLE"), "_stop"]
    assert not poe_kernel.introspection.sessions()
