"""Babysitting the children: the seed's ``babysit`` and ``rogues`` states.

Every ``babysit`` seconds the parent looks at each child with psutil (the
seed needed Proc::ProcessTable): a zombie is reaped and a fake CHLD sent; a
child that vanished gets a fake CHLD; a child that has used more than
``rogue_cpu`` seconds of CPU is a *rogue* and is escalated on -- INT, then
TERM, then KILL, ``2 * babysit`` apart, then a fake CHLD; a rogue found
calm (not running) again is forgiven.

:class:`Babysitter` belongs to the parent's pool (it exists only when
``babysit`` is set); the Daemon's ``babysit`` and ``rogues`` states call it.
A fake CHLD is the seed's: a ``sig_CHLD`` event to the Daemon's session with
``ARG3`` true.

psutil is imported when a Babysitter is made (``babysit`` set), not with the
Daemon: some 1 MB and 15 mappings of the master that every child of a pool
without a babysitter would inherit for nothing.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._process import kill, note

if TYPE_CHECKING:
    from kernelish import Kernel

__all__ = ["Babysitter"]

#: The rogue's escalation, one step every ``2 * babysit`` seconds.
_LADDER = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


class Babysitter:
    """Watches a pool's children for the missing, the dead and the rogue."""

    def __init__(
        self,
        children: Mapping[int, int],
        kernel: Kernel,
        every: float,
        rogue_cpu: float,
        verbose: bool = False,
    ) -> None:
        #: The pool's children (pid -> slot): read, never changed here.
        self.children = children
        self.kernel = kernel
        #: Seconds between rounds (the ``babysit`` parameter).
        self.every = every
        self.rogue_cpu = rogue_cpu
        self.verbose = verbose
        #: Rogue pid -> the rungs of :data:`_LADDER` already sent.
        self.rogues: dict[int, int] = {}
        import psutil  # here, not at import: only a babysitting Daemon needs it

        self._psutil = psutil

    def babysit(self) -> None:
        """One round: reap zombies, notice the missing, find rogues."""
        kernel = self.kernel
        pids = sorted(self.children)
        note(self.verbose, "Babysitting %d children %s", len(pids), ", ".join(map(str, pids)))
        calm: set[int] = set()
        psutil = self._psutil
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                status = proc.status()
                cpu = proc.cpu_times()
            except psutil.NoSuchProcess:
                note(self.verbose, "Faking a CHLD for %d MIA", pid)
                kernel.yield_("sig_CHLD", "CHLD", pid, 0, 1)
                continue
            if status == psutil.STATUS_ZOMBIE:
                try:
                    reaped, wstatus = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    reaped, wstatus = pid, 0
                if reaped == pid:
                    kernel.yield_("sig_CHLD", "CHLD", pid, wstatus, 1)
                    calm.add(pid)
                continue
            used = cpu.user + cpu.system
            if used > self.rogue_cpu:
                if pid not in self.rogues:
                    note(self.verbose, "%d has gone rogue (cpu=%.1fs)", pid, used)
                    if not self.rogues:
                        kernel.yield_("rogues")
                    self.rogues[pid] = 0
            elif status != psutil.STATUS_RUNNING:
                calm.add(pid)
        for pid in calm:
            self.rogues.pop(pid, None)
        kernel.delay("babysit", self.every)

    def escalate(self) -> None:
        """The next rung for every rogue: INT, TERM, KILL, then a fake CHLD."""
        if not self.rogues:
            return
        for pid, rung in list(self.rogues.items()):
            if rung < len(_LADDER):
                note(self.verbose, "Sending signal %d to rogue %d", _LADDER[rung], pid)
                if not kill(pid, _LADDER[rung]):
                    del self.rogues[pid]
                    continue
                self.rogues[pid] = rung + 1
            else:
                note(self.verbose, "Faking a CHLD for rogue %d", pid)
                self.kernel.yield_("sig_CHLD", "CHLD", pid, 0, 1)
                del self.rogues[pid]
        self.kernel.delay("rogues", 2 * self.every)

    def forget(self, pid: int) -> None:
        """``pid`` was reaped: it is nobody's rogue any more."""
        self.rogues.pop(pid, None)
