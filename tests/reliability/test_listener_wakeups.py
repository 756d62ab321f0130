"""Which pre-forked child a new connection wakes (KernelSelector's standing
exclusive watches).

A child pauses its listener for every request and resumes it after.  Paused,
it must never hold up a connection another child could take; resumed, it
keeps its place in the listener's wake order, so one connection at a time
keeps going to the same warm child instead of round every child in turn.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

import pytest

from .._support import LineClient, ProcessReaper, wait_until
from ._harness import App, figures, start_app

pytestmark = pytest.mark.timeout(60)


def three_children(tmp_path: Path, procs: ProcessReaper) -> App:
    """A pool of three children that serve many requests each."""
    return start_app(
        tmp_path, procs, "--start-children", "3", "--min-spare", "2", "--max-spare", "3",
        "--requests", "1000", min_waiting=3,
    )  # fmt: skip


def test_a_busy_child_never_holds_up_a_connection_an_idle_one_can_take(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    app = three_children(tmp_path, procs)
    slowest = 0.0
    for _ in range(10):
        busy = LineClient(app.port)  # a child takes it, pauses its listener, waits for lines
        busy_pid = int(busy.ask("PID"))
        start = time.monotonic()
        other = LineClient(app.port, timeout=2.0)
        other_pid = int(other.ask("PID"))  # answered by an idle child, not after `busy`
        slowest = max(slowest, time.monotonic() - start)
        assert other_pid != busy_pid
        other.finish()
        busy.finish()
        wait_until(lambda: app.waiting() == 3, 5, "every child waiting again")
    assert slowest < 1.0, f"a connection waited {slowest:.3f} s behind a busy child"
    figures("busy child", rounds=10, slowest_second_connection_ms=round(slowest * 1e3, 2))


def test_one_connection_at_a_time_stays_with_one_warm_child(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    app = three_children(tmp_path, procs)
    served: collections.Counter[int] = collections.Counter()

    def all_waiting() -> bool:  # from a snapshot taken after the last request
        return sum(status == "w" for status, _pid in app.fresh_status()["slots"]) == 3

    for _ in range(12):
        wait_until(all_waiting, 5, "every child waiting")
        client = LineClient(app.port)
        served[int(client.ask("PID"))] += 1
        client.finish()
    # Round robin would give each of the 3 children 4 of the 12; a child is
    # marked waiting a moment before it resumes its listener, so allow a
    # stray connection or two to another child.
    assert served.most_common(1)[0][1] >= 10, served
    figures("one at a time", connections=12, children=len(served), busiest=max(served.values()))
