"""Babysitting the children: the seed's ``babysit`` and ``rogues`` states.

Every ``babysit`` seconds the parent looks at each child with psutil (the
seed needed Proc::ProcessTable): a zombie is reaped and a fake CHLD sent; a
child that vanished gets a fake CHLD; a child that has used more than
``rogue_cpu`` seconds of CPU is a *rogue* and is escalated on -- INT, then
TERM, then KILL, ``2 * babysit`` apart, then a fake CHLD; a rogue found
calm (not running) again is forgiven.
"""

from __future__ import annotations

import os
import signal

import psutil

from kernelish import KERNEL, HandlerArgs

from ._process import log
from ._state import DaemonState

__all__ = ["Babysitter"]


class Babysitter(DaemonState):
    """The babysitting states, mixed into :class:`DaemonComponent`."""

    def babysit(self, _: HandlerArgs) -> None:
        """Check the children with psutil every ``babysit`` seconds: reap
        zombies, notice the missing, find rogues (``babysit``)."""
        kernel = _[KERNEL]
        if self.die or self.is_child or self.children is None:
            return
        children = sorted(self.children)
        self._verbose("Babysitting %d children %s", len(children), ", ".join(map(str, children)))
        ok: set[int] = set()
        for pid in children:
            try:
                proc = psutil.Process(pid)
                status = proc.status()
                cpu = proc.cpu_times()
            except psutil.NoSuchProcess:
                self._verbose("Faking a CHLD for %d MIA", pid)
                kernel.yield_("sig_CHLD", "CHLD", pid, 0, 1)
                continue
            if status == psutil.STATUS_ZOMBIE:
                try:
                    reaped, wstatus = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    reaped, wstatus = pid, 0
                if reaped == pid:
                    kernel.yield_("sig_CHLD", "CHLD", pid, wstatus, 1)
                    ok.add(pid)
                continue
            if cpu.user + cpu.system > self.config.rogue_cpu:
                if pid not in self.rogue_list:
                    self._verbose("%d has gone rogue (cpu=%.1fs)", pid, cpu.user + cpu.system)
                    if not self.rogue_list:
                        kernel.yield_("rogues")
                    self.rogue_list[pid] = 0
            elif status != psutil.STATUS_RUNNING:
                ok.add(pid)
        for pid in ok:
            self.rogue_list.pop(pid, None)
        assert self.config.babysit is not None
        kernel.delay("babysit", self.config.babysit)

    def rogues(self, _: HandlerArgs) -> None:
        """Escalate on rogue children: INT, TERM, KILL, ``2 * babysit``
        apart, then a fake CHLD (``rogues``)."""
        kernel = _[KERNEL]
        if self.die or self.is_child or not self.rogue_list:
            return
        ladder = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
        for pid, tries in list(self.rogue_list.items()):
            if tries < len(ladder):
                self._verbose("Sending signal %d to rogue %d", ladder[tries], pid)
                if not _kill(pid, ladder[tries]):
                    del self.rogue_list[pid]
                    continue
                self.rogue_list[pid] = tries + 1
            else:
                self._verbose("Faking a CHLD for rogue %d", pid)
                kernel.yield_("sig_CHLD", "CHLD", pid, 0, 1)
                del self.rogue_list[pid]
        assert self.config.babysit is not None
        kernel.delay("rogues", 2 * self.config.babysit)


def _kill(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    except OSError as exc:
        log.warning("%d: Killing %d: %s", os.getpid(), pid, exc)
        return False
    return True
