"""The pre-forking pool: spares kept between ``min_spare`` and ``max_spare``.

The parent forks ``start_children`` at once, then checks the scoreboard every
second -- and a fifth of a second after a check that had to fork, while the
pool ramps up -- and does what :func:`~._policy.plan` decides from it: fork
spares, SIGINT waiting children beyond ``max_spare``, or hold back while the
crash-loop brake is on.  A child that exits is replaced at once (a check is
queued on its CHLD, not at the next second); one that dies before it was ever
ready feeds the brake (:func:`~._policy.child_exited`).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _policy
from ._child import PreforkChild
from ._pool import Pool
from ._process import kill, log, note
from ._scoreboard import SlotState

if TYPE_CHECKING:
    from kernelish import Kernel

    from ._config import DaemonSettings

__all__ = ["PreforkPool"]


class PreforkPool(Pool):
    """A pool of pre-forked children, each serving up to ``requests``
    connections (the seed's pre-forking server)."""

    role = PreforkChild

    def __init__(
        self,
        config: DaemonSettings,
        kernel: Kernel,
        fork: Callable[[], int],
        inform: Callable[..., None],
    ) -> None:
        # A pre-forking configuration has its counts resolved by the seed's
        # default_min_max when it is validated (see DaemonConfig).
        super().__init__(config, config.max_children or 0, kernel, fork, inform)
        self.start_children = config.start_children or 0
        self.min_spare = config.min_spare or 0
        self.max_spare = config.max_spare or 0
        self.max_requests = config.requests or 1  # the seed's default: 1
        #: The crash-loop brake (see _policy).
        self.brake = _policy.Brake()
        #: The initial forks are under way: check once the last is made.
        self.ramping = False

    def start(self) -> None:
        self.ramping = True
        self.fork_off(self.start_children)

    def forked(self, req: Any) -> None:
        if self.ramping and not self.pending:
            self.ramping = False
            self.kernel.yield_("check_scoreboard")

    def check(self) -> float:
        """Carry out :func:`~._policy.plan`: fork spares, SIGINT extras."""
        states = self.scoreboard.states()
        born = self.born
        pool = _policy.Pool(
            children={
                pid: _policy.Child(states[slot], born.get(pid, 0.0))
                for pid, slot in self.children.items()
            },
            min_spare=self.min_spare,
            max_spare=self.max_spare,
            max_children=self.max_children,
            # Forks waiting for their retry count as under way: otherwise
            # every check during a fork outage adds more, and the retry that
            # works forks them all at once (up to max_children).
            underway=self.pending + len(self.failed),
        )
        decision = _policy.plan(pool, self.brake, time.monotonic())
        if self.brake.died_at_start and not decision.brake.died_at_start:
            log.warning("%d: a new child is ready: the crash-loop brake is off", os.getpid())
        self.brake = decision.brake
        verbose = self.config.verbose
        if decision.forks:
            note(verbose, "Spawning %d spares", decision.forks)
            self.fork_off(decision.forks)
        for pid in decision.kills:
            note(verbose, "Killing spare %d", pid)
            kill(pid, signal.SIGINT)
        return decision.again

    def replace(self, pid: int, state: SlotState, wstatus: int | None) -> None:
        self._count_death(pid, state, wstatus)
        self.kernel.yield_("check_scoreboard")

    def _count_death(self, pid: int, state: SlotState, wstatus: int | None) -> None:
        """A child that died before it was ready feeds the crash-loop brake."""
        brake = _policy.child_exited(self.brake, state, time.monotonic())
        if brake is self.brake:
            return
        self.brake = brake
        how = _exit_text(wstatus)
        delay = _policy.brake_delay(brake.died_at_start)
        if delay:
            log.warning(
                "%d: child %d died at start (%s), %d in a row: crash-loop brake, next fork in %gs",
                os.getpid(),
                pid,
                how,
                brake.died_at_start,
                delay,
            )
        else:
            log.warning("%d: child %d died at start (%s)", os.getpid(), pid, how)

    def requeue(self, failed: list[Any]) -> None:
        self.fork_off(len(failed))

    def update_status(self, status: Any, parm: Any) -> None:
        log.warning("%d: Only child processes should update their status (%s)", os.getpid(), status)

    def brake_text(self) -> str:
        return self.brake.describe(time.monotonic())


def _exit_text(wstatus: int | None) -> str:
    """A wait status in words: 'exit status 1', 'signal 11'."""
    if not isinstance(wstatus, int):
        return "gone"
    if os.WIFSIGNALED(wstatus):
        return f"signal {os.WTERMSIG(wstatus)}"
    if os.WIFEXITED(wstatus):
        return f"exit status {os.WEXITSTATUS(wstatus)}"
    return f"wait status {wstatus}"
