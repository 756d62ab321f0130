"""The Daemon's signal states and its shutdown: children going away, INT,
TERM, QUIT, HUP, USR2, and the stop with its escalation to KILL.

Mixed into :class:`~kernelish.components.daemon.DaemonComponent`; each
method is a state of the Daemon's session (the seed's ``sig_CHLD``,
``sig_INT``, ``sig_TERM``, ``sig_HUP``, ``shutdown``, ``foreign_child``),
plus what the seed lacked: ``sig_USR2`` (the peek dump), ``sig_QUIT`` (a
fast stop: children KILLed at once), ``orphaned`` (a child whose parent
died) and ``shutdown_escalate`` (KILL for children that ignore TERM).

TERM (and INT) is a graceful stop: the children are TERMed, and a child's
``daemon_shutdown`` handler stops accepting and closes its connection once
the request under way is answered (see examples/_lineserver.py); whatever is
left after ``shutdown_timeout`` gets KILL -- gunicorn's TERM, Apache's
graceful-stop.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from kernelish import ARG0, ARG1, ARG2, ARG3, KERNEL, HandlerArgs

from . import _policy, _process
from ._babysit import _kill
from ._facade import Daemon
from ._process import log
from ._scoreboard import SlotState
from ._state import DaemonState

__all__ = ["SignalStates"]

#: Seconds an orphaned child (its parent died) gets to shut down before it
#: exits by itself; within the 1 s the reliability suite demands.
_ORPHAN_GRACE = 0.5


class SignalStates(DaemonState):
    """The signal and shutdown states, mixed into :class:`DaemonComponent`."""

    def foreign_child(self, _: HandlerArgs) -> None:
        """Adopt a child spawned by user code: TERMed at shutdown."""
        self.foreign_children.add(int(_[ARG0]))

    def sig_CHLD(self, _: HandlerArgs) -> None:
        """A child exited (from ``sig_child``, the CHLD signal, or a fake CHLD
        from the babysitter): free its slot, and replace it at once."""
        kernel, pid, fake = _[KERNEL], _[ARG1], _[ARG3]
        if pid in self.foreign_children:
            self.foreign_children.discard(pid)
            return
        if self.is_child or self.children is None:
            return
        slot = self.children.pop(pid, None)
        if slot is None:
            # Our children arrive twice: sig_child first, then the CHLD signal.
            if fake:
                log.warning("%d: Needless fake CHLD for %s", os.getpid(), pid)
            return
        self._verbose("SIGCHLD pid=%s: child %s", pid, "is gone" if fake else "exited")
        assert self.scoreboard is not None
        state = self.scoreboard.read(slot)
        self.born.pop(pid, None)
        if self.is_prefork() and not self.die:
            self._count_death(pid, state, _[ARG2])
        self.scoreboard.drop(slot)
        kernel.sig_child(pid)
        self.rogue_list.pop(pid, None)
        if self.die:
            if not self.children:
                kernel.delay("shutdown_escalate")
        elif self.is_prefork():
            kernel.yield_("check_scoreboard")
        elif self.is_fork():
            self._backpressure()

    def _count_death(self, pid: int, state: str, wstatus: int | None) -> None:
        """A child that died before it was ready feeds the crash-loop brake."""
        brake = _policy.child_exited(self.brake, SlotState(state), time.monotonic())
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

    def sig_INT(self, _: HandlerArgs) -> None:
        """INT: shut down (the signal is handled, so the session lives on)."""
        self._verbose("SIGINT")
        _[KERNEL].yield_("shutdown")
        _[KERNEL].sig_handled()

    def sig_QUIT(self, _: HandlerArgs) -> None:
        """QUIT (the parent): stop *now* -- children get KILL at once, without
        finishing their requests; the parent still removes its pidfile and
        socket.  Also during a graceful stop (TERM) that takes too long."""
        kernel = _[KERNEL]
        kernel.sig_handled()
        if self.is_child:
            return
        self._verbose("SIGQUIT")
        self.fast_stop = True
        if not self.die:
            kernel.call(kernel.get_active_session(), "shutdown")
        kernel.call(kernel.get_active_session(), "shutdown_escalate")

    def sig_TERM(self, _: HandlerArgs) -> None:
        """TERM: shut down, TERMing the children (daemontools' ``svc -d``)."""
        self._verbose("SIGTERM")
        kernel = _[KERNEL]
        kernel.yield_("shutdown")
        kernel.sig_handled()
        if self.is_child and os.getppid() != self.parent_pid:
            # The parent died: nobody will escalate for us.  (This timer also
            # holds the child until it fires, so it is the child's exit time.)
            kernel.delay("orphaned", _ORPHAN_GRACE)

    def orphaned(self, _: HandlerArgs) -> None:
        """A child whose parent died and that is still here after 1 s."""
        log.warning("%d: parent %s is gone; exiting", os.getpid(), self.parent_pid)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(0)

    def sig_HUP(self, _: HandlerArgs) -> None:
        """HUP: reopen the logfile (log rotation)."""
        self._verbose("SIGHUP (logfile=%s)", self.config.logfile)
        _[KERNEL].sig_handled()
        self.services.reloading()
        if self.config.logfile is not None:
            try:
                _process.open_logfile(self.config.logfile)
            except (OSError, _process.LogfileError) as exc:
                # A rotation gone wrong (directory gone, no permission, disk
                # full) must not take the server down: keep the old file.
                log.error(
                    "%d: SIGHUP: cannot reopen %s: %s; still logging to the old file",
                    os.getpid(),
                    self.config.logfile,
                    exc,
                )
        self.services.reloaded()

    def sig_USR2(self, _: HandlerArgs) -> None:
        """USR2: write the verbose peek dump to stderr (the logfile)."""
        text = Daemon.peek(True, file=sys.stderr)
        self.services.peeked(text)  # to `kernelish peek`

    def shutdown(self, _: HandlerArgs) -> None:
        """Stop: TERM the children, drop alias, timers and signal watchers
        so the kernel can exit, broadcast ``daemon_shutdown``."""
        kernel = _[KERNEL]
        self._verbose("shutdown")
        kernel.delay("rogues")
        for pid in list(self.children or ()) + list(self.foreign_children):
            _kill(pid, signal.SIGTERM)
        if self.die:
            return
        if self.my_slot is not None and self.scoreboard is not None:
            self.scoreboard.write(self.my_slot, "e")
            self.my_slot = None
        kernel.alias_remove(self.config.alias)
        kernel.delay("waste_time")
        kernel.delay("check_scoreboard")
        kernel.delay("babysit")
        kernel.delay("retry")
        self.die = True
        self.services.stopping()  # STOPPING=1, control socket closed
        self.inform_others("daemon_shutdown")
        for name in ("CHLD", "HUP", "INT", "TERM", "USR2"):
            kernel.sig(name)
        if self.children:
            kernel.delay("shutdown_escalate", self.config.shutdown_timeout)

    def shutdown_escalate(self, _: HandlerArgs) -> None:
        """Children that ignored TERM for ``shutdown_timeout`` get KILL (at
        once after QUIT)."""
        for pid in list(self.children or ()):
            if self.fast_stop:
                log.warning("%d: fast stop (SIGQUIT): sending KILL to child %d", os.getpid(), pid)
            else:
                log.warning(
                    "%d: child %d ignored TERM for %ss; sending KILL",
                    os.getpid(),
                    pid,
                    self.config.shutdown_timeout,
                )
            _kill(pid, signal.SIGKILL)


def _exit_text(wstatus: int | None) -> str:
    """A wait status in words: 'exit status 1', 'signal 11'."""
    if not isinstance(wstatus, int):
        return "gone"
    if os.WIFSIGNALED(wstatus):
        return f"signal {os.WTERMSIG(wstatus)}"
    if os.WIFEXITED(wstatus):
        return f"exit status {os.WEXITSTATUS(wstatus)}"
    return f"wait status {wstatus}"
