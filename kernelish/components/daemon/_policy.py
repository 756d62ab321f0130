"""The pre-forking pool's decisions as pure functions: state in, forks and kills out.

Discussion
----------
The seed decided inside ``check_scoreboard``, between reads of shared memory
and calls to ``fork``: a rule could only be tested by forking.  Here the
decision is :func:`plan`, a function of what the parent knows -- each child's
scoreboard state and when it was forked, the forks under way, the
configuration, the crash-loop brake -- that returns what to do: how many
children to fork, which waiting ones to ask to leave (SIGINT), and when to
look again.  ``check_scoreboard`` gathers the inputs and carries the plan
out; ``tests/test_pool_policy.py`` checks the rules from a table, with no
process forked.

The rules, the seed's unless said otherwise:

* *spares* are children waiting (``w``) or on their way to it (``F``, ``f``);
  forks under way (queued, or waiting for their retry after a failed fork)
  count as spares too, so a slow fork is never doubled;
* fewer spares than ``min_spare``: fork the difference, never past
  ``max_children``; and look again after :data:`SHORT_CHECK` seconds instead
  of one -- under load the new children are taken as soon as they are up
  (the pool reaches ``min_spare`` in a few quick steps, as Apache's prefork
  ramp does, instead of one step a second);
* more than ``max_spare``: the waiting children beyond it get SIGINT;
* the crash-loop brake (not in the seed): a child that dies *at start* -- in
  state ``F`` or ``f``, before it ever said it was ready -- is replaced at
  once the first time (:data:`BRAKE_FREE`); from the next death in a row the
  pool forks again only after a pause of :data:`BRAKE_FIRST` seconds,
  doubling with each further death up to :data:`BRAKE_MAX`, and then one
  child at a time (a probe).  A bad import, a missing file, a handler that
  raises at start: the parent no longer forks a few hundred children a
  second forever, and says so in its log and in ``kernelish status``.  The
  brake is released as soon as a child forked after the last death at start
  is ready (``w``, ``r`` or ``l``): the pool then fills as usual.  Apache
  slows its spawn rate the same way; gunicorn stops altogether
  (``WORKER_BOOT_ERROR``), which a daemon that should survive a transient
  fault (a database not yet up) must not do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ._scoreboard import SlotState

__all__ = [
    "BRAKE_FIRST",
    "BRAKE_FREE",
    "BRAKE_MAX",
    "CHECK",
    "SHORT_CHECK",
    "Brake",
    "Child",
    "Plan",
    "Pool",
    "brake_delay",
    "child_exited",
    "plan",
]

#: Seconds between two scoreboard checks (the seed's one second).
CHECK = 1.0
#: Seconds to the next check after one that had to fork spares.
SHORT_CHECK = 0.2
#: Deaths at start in a row replaced at once, before the brake engages.
BRAKE_FREE = 1
#: The first pause of the brake, in seconds; it doubles with each death.
BRAKE_FIRST = 0.5
#: The longest pause of the brake.
BRAKE_MAX = 30.0

#: States of a child on its way to ready: a death in one is a death at start.
STARTING = frozenset({SlotState.FORK, SlotState.CHILD})
#: States that count as a spare.
SPARE = frozenset({SlotState.FORK, SlotState.CHILD, SlotState.WAIT})
#: States of a child that got ready (it waits, or serves).
READY = frozenset({SlotState.WAIT, SlotState.REQ, SlotState.LONG})


@dataclass(frozen=True)
class Child:
    """A pool child as the parent sees it: its slot's state, when it was forked."""

    state: SlotState
    born: float = 0.0


@dataclass(frozen=True)
class Brake:
    """The crash-loop brake: children that died at start in a row, when the
    last one died, and the time before which nothing is forked."""

    died_at_start: int = 0
    last_death: float = 0.0
    hold_until: float = 0.0

    def engaged(self) -> bool:
        """Whether forks are being slowed (past the free deaths)."""
        return self.died_at_start > BRAKE_FREE

    def describe(self, now: float) -> str:
        """The brake in words ('' when nobody died at start)."""
        if not self.died_at_start:
            return ""
        text = f"{self.died_at_start} children died at start in a row"
        if self.engaged():
            left = max(self.hold_until - now, 0.0)
            text = f"crash-loop brake: {text}, next fork in {left:.1f}s"
        return text


@dataclass(frozen=True)
class Pool:
    """What the parent knows of its pre-forking pool."""

    children: Mapping[int, Child]
    min_spare: int
    max_spare: int
    max_children: int
    #: Forks queued or waiting for a retry (they count as spares).
    underway: int = 0


@dataclass(frozen=True)
class Plan:
    """What to do: fork ``forks`` children, SIGINT ``kills``, look again in
    ``again`` seconds; ``brake`` is the brake from now on."""

    forks: int
    kills: tuple[int, ...]
    again: float
    brake: Brake


def brake_delay(died_at_start: int) -> float:
    """Seconds the pool waits after the ``died_at_start``-th death in a row."""
    if died_at_start <= BRAKE_FREE:
        return 0.0
    return min(BRAKE_FIRST * 2.0 ** (died_at_start - BRAKE_FREE - 1), BRAKE_MAX)


def child_exited(brake: Brake, state: SlotState, now: float) -> Brake:
    """The brake after a pool child was reaped in ``state`` at ``now``."""
    if state not in STARTING:
        return brake
    n = brake.died_at_start + 1
    return Brake(n, now, max(brake.hold_until, now + brake_delay(n)))


def plan(pool: Pool, brake: Brake, now: float) -> Plan:
    """The decision of one scoreboard check (see the module notes)."""
    children = pool.children
    if brake.died_at_start and any(
        c.state in READY and c.born > brake.last_death for c in children.values()
    ):
        brake = Brake()  # a child forked since the last death got ready
    spare = sum(c.state in SPARE for c in children.values())
    short = pool.min_spare - spare - pool.underway
    room = pool.max_children - len(children) - pool.underway
    forks = max(0, min(short, room))
    again = CHECK
    if forks and brake.engaged():
        starting = pool.underway + sum(c.state in STARTING for c in children.values())
        if now < brake.hold_until:
            forks = 0
            again = min(CHECK, brake.hold_until - now)
        elif starting:
            forks = 0  # a probe is on its way: wait for its fate
        else:
            forks = 1
    if forks:
        again = SHORT_CHECK
    waiting = [pid for pid, c in children.items() if c.state is SlotState.WAIT]
    extra = spare - pool.max_spare
    kills = tuple(waiting[: max(extra, 0)])
    return Plan(forks, kills, again, brake)
