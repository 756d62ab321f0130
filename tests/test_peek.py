"""kernelish.peek.Peek: the port of POE::API::Peek (POE-SEMANTICS 5.4)."""

from __future__ import annotations

import os
import time
from typing import Any

from kernelish import KERNEL, SESSION, Session, poe_kernel
from kernelish.peek import Peek


def test_event_queue_dump_inside_start() -> None:
    out: dict[str, Any] = {}

    def s2_start(_: Any) -> None:
        pass

    def start(_: Any) -> None:
        k = _[KERNEL]
        me = _[SESSION]
        k.yield_("ev1")
        k.delay("tmr", 100)
        s2 = Session.create(inline_states={"_start": s2_start, "hello": lambda _: None})
        k.signal(me, "USR_X")
        k.post(s2, "hello")
        out["dump"] = Peek().event_queue_dump()
        out["s2"] = s2
        k.delay("tmr")

    s1 = Session.create(inline_states={"_start": start, "ev1": lambda _: None})
    s2 = out["s2"]
    rows = [(d["index"], d["event"], d["source"], d["destination"], d["type"]) for d in out["dump"]]
    assert rows == [
        (0, "ev1", s1, s1, "User"),
        (1, "_garbage_collect", s2, s2, "_garbage_collect"),
        (2, "_signal", s1, s1, "_signal"),
        (3, "hello", s1, s2, "User"),
        (4, "tmr", s1, s1, "Alarm"),
    ]
    ids = [d["ID"] for d in out["dump"]]
    assert ids[-1] < ids[1]  # the timer sorts last by due time, not by ID
    assert out["dump"][-1]["priority"] > time.time() + 99
    poe_kernel.run()


def test_session_list_count_aliases_loggable() -> None:
    out: dict[str, Any] = {}

    def start(_: Any) -> None:
        _[KERNEL].alias_set("Daemon")
        _[KERNEL].alias_set("Alpha")
        api = Peek()
        out["loggable"] = api.session_id_loggable()
        out["kernel_loggable"] = api.session_id_loggable(poe_kernel)
        out["aliases"] = api.session_alias_list()
        out["list"] = api.session_list()
        out["count"] = api.session_count()
        _[KERNEL].alias_remove("Daemon")
        _[KERNEL].alias_remove("Alpha")

    s = Session.create(inline_states={"_start": start})
    assert s is not None
    assert out["loggable"] == f"session {s.ID} (Alpha, Daemon)"
    assert out["kernel_loggable"] == f"session {poe_kernel.ID}"
    assert out["aliases"] == ["Alpha", "Daemon"]
    assert out["list"] == [poe_kernel, s]
    assert out["count"] == 2
    assert Peek().session_id_loggable(s) == f"session {s.ID}"
    poe_kernel.run()
    assert Peek().session_count() == 0


def test_refcounts_by_kind_handles_children_signals() -> None:
    out: dict[str, Any] = {}
    r, w = os.pipe()
    try:

        def kid_start(_: Any) -> None:
            pass

        def start(_: Any) -> None:
            k = _[KERNEL]
            api = Peek()
            out["start"] = api.get_session_refcount()
            sid = _[SESSION].ID
            k.refcount_increment(sid, "a")
            k.refcount_increment(sid, "a")
            k.refcount_increment(sid, "b")
            out["extref"] = api.get_session_extref_count()
            k.alias_set("x")
            k.yield_("ev")
            k.yield_("ev")
            out["after"] = api.get_session_refcount()  # 2 tags + alias + events to me
            k.select_read(r, "readable")
            out["handles"] = api.session_handle_count()
            k.sig("USR1", "usr1")
            out["watchers"] = api.signal_watchers("USR1")
            out["with_watcher"] = api.get_session_refcount()  # sig() counts nothing
            kid = Session.create(inline_states={"_start": kid_start})
            out["kid"] = kid
            out["children"] = api.get_session_children()
            out["final"] = api.get_session_refcount()
            k.select_read(r)
            k.sig("USR1")
            k.refcount_decrement(sid, "a")
            k.refcount_decrement(sid, "a")
            k.refcount_decrement(sid, "b")
            k.alias_remove("x")

        s = Session.create(inline_states={"_start": start, "ev": lambda _: None})
        assert out["start"] == 0
        assert out["extref"] == 2
        assert out["after"] == 4
        assert out["handles"] == 1
        assert out["watchers"] == {s: "usr1"}
        assert out["with_watcher"] == 5
        assert out["children"] == [out["kid"]]
        assert out["final"] == 6
        poe_kernel.run()
    finally:
        os.close(r)
        os.close(w)
