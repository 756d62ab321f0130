"""Timers: return values (POE-SEMANTICS 1.3 table), named-timer clearing,
ID calls, and the order on a manual clock."""

from __future__ import annotations

import errno
import time
from typing import Any

import pytest

from kernelish import ARG0, KERNEL, STATE, Kernel, Session, poe_kernel, using_kernel


def in_session(body: Any, **states: Any) -> None:
    """Run ``body(kernel)`` inside a session's _start, then run the kernel."""
    Session.create(inline_states={"_start": lambda _: body(_[KERNEL]), **states})
    poe_kernel.run()


def test_return_values_of_the_table() -> None:
    out: dict[str, Any] = {}

    def body(k: Any) -> None:
        now = time.time()
        out["alarm"] = k.alarm("t", now + 0.001)
        out["alarm_none"] = k.alarm(None, now)
        out["alarm_clear"] = k.alarm("t")
        out["alarm_add"] = k.alarm_add("t", now + 0.001)
        out["alarm_add_bad"] = (k.alarm_add(None, now), k.alarm_add("t", None))
        out["delay"] = k.delay("t", 0.001)
        out["delay_bad"] = k.delay(None, 1)
        out["delay_clear"] = k.delay("t")
        out["delay_add"] = k.delay_add("t", 0.001)
        out["delay_add_bad"] = (k.delay_add(None, 1), k.delay_add("t", None))
        a = k.alarm_set("t", now + 0.001)
        d = k.delay_set("t", 0.001)
        out["ids"] = (a, d)
        k.last_error = 0
        out["alarm_set_bad"] = (k.alarm_set(None, now), k.last_error)
        k.last_error = 0
        out["delay_set_bad"] = (k.delay_set("t", None), k.last_error)
        k.alarm_remove_all()

    in_session(body, t=lambda _: None)
    assert out["alarm"] == 0
    assert out["alarm_none"] == errno.EINVAL
    assert out["alarm_clear"] == 0
    assert out["alarm_add"] == 0
    assert out["alarm_add_bad"] == (errno.EINVAL, errno.EINVAL)
    assert out["delay"] == 0
    assert out["delay_bad"] == errno.EINVAL
    assert out["delay_clear"] == 0
    assert out["delay_add"] == 0
    assert out["delay_add_bad"] == (errno.EINVAL, errno.EINVAL)
    a, d = out["ids"]
    assert isinstance(a, int)
    assert d > a > 0
    assert out["alarm_set_bad"] == (None, errno.EINVAL)
    assert out["delay_set_bad"] == (None, errno.EINVAL)


def test_named_clearing_only_this_session_only_timers() -> None:
    trace: list[Any] = []

    def rec(_: Any) -> None:
        trace.append((_[KERNEL].get_active_session().ID, _[STATE], _[ARG0]))

    def first(k: Any) -> None:
        k.delay_add("tick", 0.001, "a1")
        k.delay_set("tick", 0.001, "a2")
        k.alarm_add("tick", time.time() + 0.001, "a3")
        k.yield_("tick", "posted")  # a posted event of that name survives

    Session.create(inline_states={"_start": lambda _: first(_[KERNEL]), "tick": rec})
    s1 = max(s.ID for s in poe_kernel.introspection.sessions())

    def second(k: Any) -> None:
        k.delay("tick", 0.002, "b1")

    Session.create(inline_states={"_start": lambda _: second(_[KERNEL]), "tick": rec})
    s2 = max(s.ID for s in poe_kernel.introspection.sessions())

    def clear(_: Any) -> None:
        _[KERNEL].delay("tick", 0.003, "replaced")

    first_session = poe_kernel.ID_id_to_session(s1)
    assert first_session is not None
    poe_kernel.run_as(first_session, poe_kernel.state, "clear", clear)
    poe_kernel.post(s1, "clear")
    poe_kernel.run()
    assert trace == [(s1, "tick", "posted"), (s2, "tick", "b1"), (s1, "tick", "replaced")]


def test_delay_replaces_and_delay_without_seconds_clears() -> None:
    trace: list[Any] = []

    def body(k: Any) -> None:
        k.delay("x", 0.001, 1)
        k.delay("x", 0.001, 2)  # replaces the first
        k.delay("y", 0.001)
        k.delay("y")  # only clears

    in_session(body, x=lambda _: trace.append(_[ARG0]), y=lambda _: trace.append("y"))
    assert trace == [2]


def test_alarm_remove_adjust_and_remove_all() -> None:
    out: dict[str, Any] = {}

    def body(k: Any) -> None:
        now = time.time()
        tid = k.alarm_set("a", now + 100, 1, 2)
        removed = k.alarm_remove(tid)
        out["removed"] = removed
        out["removed_due"] = removed[1] - now
        k.last_error = 0
        out["again"] = (k.alarm_remove(tid), k.last_error)
        out["none"] = (k.alarm_remove(None), k.last_error)
        tid = k.alarm_set("b", now + 100)
        out["adjust"] = k.alarm_adjust(tid, -50) - now
        out["delay_adjust"] = k.delay_adjust(tid, 10) - now
        k.last_error = 0
        out["adjust_bad"] = (k.alarm_adjust(123456789, 1), k.last_error)
        k.delay_add("c", 200, "x", "y")
        everything = k.alarm_remove_all()
        out["all"] = sorted((n, *rest) for n, _due, *rest in everything)
        out["left"] = k.get_event_count()
        k.yield_("from_other")

    def other(_: Any) -> None:
        k = _[KERNEL]
        tid = k.alarm_set("mine", time.time() + 100)
        s.heap["tid"] = tid
        k.call(s, "steal")
        k.alarm_remove(tid)

    def steal(_: Any) -> None:
        k = _[KERNEL]
        k.last_error = 0
        out["eperm"] = (k.alarm_remove(_.heap["tid"]), k.last_error)

    s = Session.create(
        inline_states={
            "_start": lambda _: body(_[KERNEL]),
            "steal": steal,
            "from_other": lambda _: None,
        }
    )
    Session.create(inline_states={"_start": other})
    poe_kernel.run()
    assert out["removed"][0] == "a"
    assert out["removed"][2] == [1, 2]
    assert out["removed_due"] == pytest.approx(100, abs=0.5)
    assert out["again"] == (None, errno.ESRCH)
    assert out["none"] == (None, errno.EINVAL)
    assert out["adjust"] == pytest.approx(50, abs=0.5)
    assert out["delay_adjust"] == pytest.approx(10, abs=0.5)
    assert out["adjust_bad"] == (None, errno.ESRCH)
    assert out["all"] == [("b",), ("c", "x", "y")]
    assert out["left"] == 0  # the GC marker is queued after _start
    assert out["eperm"] == (None, errno.EPERM)


def test_timer_ids_increase_and_share_the_queue_sequence() -> None:
    ids: list[int] = []

    def body(k: Any) -> None:
        ids.append(k.delay_set("a", 1))
        k.yield_("noop")
        ids.append(k.delay_set("a", 1))
        k.alarm_remove_all()

    in_session(body, noop=lambda _: None)
    assert ids[1] == ids[0] + 2


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_timer_order_on_a_manual_clock() -> None:
    clock = ManualClock()
    with using_kernel(Kernel(clock=clock)) as kernel:
        trace: list[Any] = []

        def start(_: Any) -> None:
            k = _[KERNEL]
            k.delay("late", 2.0)
            k.delay("early", 1.0)
            k.delay_add("same", 1.0, "second")  # same due time: insertion order

        rec = {n: (lambda _: trace.append((_[STATE], _[ARG0]))) for n in ("late", "early", "same")}
        Session.create(inline_states={"_start": start, **rec})
        kernel.run_one_timeslice()  # the GC marker
        assert trace == []
        clock.now += 0.5
        kernel.run_one_timeslice()
        assert trace == []
        clock.now += 0.5
        kernel.run_one_timeslice()
        assert trace == [("early", None), ("same", "second")]
        clock.now += 1.0
        kernel.run_one_timeslice()
        assert trace[-1] == ("late", None)
        for _i in range(5):
            if not kernel.run_one_timeslice():
                break
        assert not kernel.introspection.sessions()
        assert not poe_kernel.introspection.alive()  # the process's kernel saw none of it


def test_many_timers_fire_in_due_then_id_order_across_buckets() -> None:
    """5,000 timers in random order -- 3,000 over ~20 buckets of due time,
    2,000 over 12 s, past the buckets' 2 s horizon --, with equal due times,
    timers set from inside handlers, and a third removed (enough to compact
    the queue): the live ones fire in (due time, ID) order."""
    import random

    clock = ManualClock()
    rng = random.Random(7)
    # Dues on a 1/512 s grid: plenty of ties and of bucket boundaries.
    delays = [rng.randrange(0, 40) / 512 for _ in range(3000)]
    delays += [rng.randrange(0, 6000) / 512 for _ in range(2000)]
    rng.shuffle(delays)
    expected: list[tuple[float, int]] = []  # (due, ID), ARG0 of each timer
    fired: list[tuple[float, int]] = []

    def set_timer(k: Any, delay: float) -> int:
        # ARG0 is filled in after the call: the ID is only known then.
        label: list[Any] = []
        timer_id = k.delay_set("t", delay, label)
        label.extend((clock.now + delay, timer_id))
        return int(timer_id)

    with using_kernel(Kernel(clock=clock)) as kernel:

        def start(_: Any) -> None:
            k = _[KERNEL]
            for i, delay in enumerate(delays):
                timer_id = set_timer(k, delay)
                if i % 3 == 0:
                    assert k.alarm_remove(timer_id) is not None
                else:
                    expected.append((clock.now + delay, timer_id))
            k.delay_set("again", 10 / 512)
            k.delay_set("tick", 0.25, 48)

        def again(_: Any) -> None:
            # Set while the queue is being dispatched; one is already due.
            k = _[KERNEL]
            for delay in (0.0, 15 / 512, 10 / 512, 0.0, 3000 / 512, 5.0):
                expected.append((clock.now + delay, set_timer(k, delay)))

        def tick(_: Any) -> None:
            # Timers set all along, near and past the moving horizon.
            k, left = _[KERNEL], _[ARG0]
            for _i in range(20):
                delay = rng.randrange(0, 3000) / 512
                expected.append((clock.now + delay, set_timer(k, delay)))
            if left:
                k.delay_set("tick", 0.25, left - 1)

        def t(_: Any) -> None:
            fired.append(tuple(_[ARG0]))  # type: ignore[arg-type]

        Session.create(inline_states={"_start": start, "again": again, "tick": tick, "t": t})
        for _step in range(20000):
            # The clock jumps to the next due time: no timeslice waits.
            head = kernel.introspection.next_due()
            if head is not None and head > clock.now:
                clock.now = head
            if not kernel.run_one_timeslice():
                break
        assert len(fired) == len(expected) > 4000
        assert fired == sorted(expected)
        assert not kernel.introspection.sessions()
