"""The pre-forking pool's policy from a table: no process is forked."""

from __future__ import annotations

import pytest

from kernelish.components.daemon import SlotState
from kernelish.components.daemon._policy import (
    BRAKE_FIRST,
    BRAKE_MAX,
    CHECK,
    SHORT_CHECK,
    Brake,
    Child,
    Pool,
    brake_delay,
    child_exited,
    plan,
)

W, R, L, F, C, E = (SlotState.WAIT, SlotState.REQ, SlotState.LONG, SlotState.FORK,
                    SlotState.CHILD, SlotState.EXIT)  # fmt: skip


def pool(states: str, *, underway: int = 0, lo: int = 2, hi: int = 4, most: int = 8) -> Pool:
    """A pool whose children (pids 100, 101, ...) are in ``states`` (slot chars)."""
    children = {100 + i: Child(SlotState(c), born=1.0) for i, c in enumerate(states)}
    return Pool(children, min_spare=lo, max_spare=hi, max_children=most, underway=underway)


@pytest.mark.parametrize(
    ("states", "underway", "forks", "kills", "again"),
    [
        # min_spare 2, max_spare 4, max_children 8
        ("ww", 0, 0, (), CHECK),  # enough spares
        ("w", 0, 1, (), SHORT_CHECK),  # one short: fork, look again soon (the ramp)
        ("", 0, 2, (), SHORT_CHECK),  # empty: fork min_spare
        ("rr", 0, 2, (), SHORT_CHECK),  # busy children are no spares
        ("rrF", 0, 1, (), SHORT_CHECK),  # a child being forked is a spare
        ("rrf", 0, 1, (), SHORT_CHECK),  # so is one starting
        ("rr", 1, 1, (), SHORT_CHECK),  # a fork under way counts
        ("rr", 2, 0, (), CHECK),
        ("rrrrrrr", 0, 1, (), SHORT_CHECK),  # room for one more
        ("rrrrrrrr", 0, 0, (), CHECK),  # max_children reached
        ("rrrrrrr", 1, 0, (), CHECK),  # the last room is under way
        ("llrrrrrr", 0, 0, (), CHECK),
        ("wwwww", 0, 0, (100,), CHECK),  # one spare too many: SIGINT a waiting one
        ("wwwwwww", 0, 0, (100, 101, 102), CHECK),
        ("Fwwwww", 0, 0, (101, 102), CHECK),  # starting ones count, only waiting ones go
        ("rwwwwr", 0, 0, (), CHECK),
        ("ee", 0, 2, (), SHORT_CHECK),  # exiting children are no spares
    ],
)
def test_spares_and_max_children(
    states: str, underway: int, forks: int, kills: tuple[int, ...], again: float
) -> None:
    decision = plan(pool(states, underway=underway), Brake(), now=10.0)
    assert (decision.forks, decision.kills, decision.again) == (forks, kills, again)
    assert decision.brake == Brake()


@pytest.mark.parametrize(
    ("deaths", "delay"),
    [(0, 0.0), (1, 0.0), (2, BRAKE_FIRST), (3, 2 * BRAKE_FIRST), (4, 4 * BRAKE_FIRST),
     (5, 8 * BRAKE_FIRST), (20, BRAKE_MAX), (1000, BRAKE_MAX)],
)  # fmt: skip
def test_brake_delay_doubles_up_to_its_cap(deaths: int, delay: float) -> None:
    assert brake_delay(deaths) == delay


@pytest.mark.parametrize(
    ("state", "counts"),
    [(F, True), (C, True), (W, False), (R, False), (L, False), (E, False)],
)
def test_only_a_death_before_ready_counts(state: SlotState, counts: bool) -> None:
    brake = child_exited(Brake(), state, now=5.0)
    assert (brake.died_at_start == 1) is counts
    if counts:
        assert brake.last_death == 5.0 and brake.hold_until == 5.0  # the first is free


def test_deaths_in_a_row_push_the_hold() -> None:
    brake = Brake()
    holds = []
    for now in (10.0, 10.1, 10.7, 11.8):
        brake = child_exited(brake, C, now)
        holds.append(round(brake.hold_until - now, 6))
    assert holds == [0.0, BRAKE_FIRST, 2 * BRAKE_FIRST, 4 * BRAKE_FIRST]
    assert brake.died_at_start == 4


@pytest.mark.parametrize(
    ("states", "now", "forks", "again"),
    [
        ("", 10.0, 0, 1.0),  # held until 12: nothing forked, look again at most in CHECK
        ("", 11.5, 0, 0.5),  # ... and exactly when the hold ends
        ("", 12.0, 1, SHORT_CHECK),  # hold over: one probe, not min_spare
        ("f", 12.5, 0, CHECK),  # the probe is starting: wait for its fate
        ("F", 12.5, 0, CHECK),
    ],
)
def test_the_brake_holds_then_probes_one_child(
    states: str, now: float, forks: int, again: float
) -> None:
    brake = Brake(died_at_start=3, last_death=9.0, hold_until=12.0)
    children = {100 + i: Child(SlotState(c), born=12.1) for i, c in enumerate(states)}
    decision = plan(Pool(children, 2, 4, 8), brake, now)
    assert (decision.forks, decision.again) == (forks, again)
    assert decision.brake == brake, "still engaged"


def test_a_ready_child_born_after_the_last_death_releases_the_brake() -> None:
    brake = Brake(died_at_start=5, last_death=9.0, hold_until=20.0)
    old_ready = {100: Child(W, born=1.0)}  # ready, but from before the deaths
    decision = plan(Pool(old_ready, 2, 4, 8), brake, now=10.0)
    assert decision.forks == 0 and decision.brake == brake
    probe_ready = {100: Child(W, born=1.0), 101: Child(W, born=9.5)}
    decision = plan(Pool(probe_ready, 3, 4, 8), brake, now=10.0)
    assert decision.brake == Brake(), "released"
    assert (decision.forks, decision.again) == (1, SHORT_CHECK), "the pool fills as usual"


def test_one_free_death_does_not_slow_the_pool() -> None:
    brake = child_exited(Brake(), F, now=10.0)
    decision = plan(pool(""), brake, now=10.0)
    assert decision.forks == 2, "replaced at once, the whole shortfall"


def test_describe() -> None:
    assert Brake().describe(0.0) == ""
    assert Brake(1, 1.0, 1.0).describe(2.0) == "1 children died at start in a row"
    text = Brake(4, 1.0, 5.0).describe(2.0)
    assert text == "crash-loop brake: 4 children died at start in a row, next fork in 3.0s"
