"""Child processes: reaping, ``sig_child`` and the CHLD signal (POE-SEMANTICS 4.5).

Discussion
----------
While anyone is interested in children (a ``sig('CHLD')`` watcher or a
``sig_child(pid)`` watch), the kernel installs a SIGCHLD handler and, on each
SIGCHLD the wakeup pipe carries, reaps with ``waitpid(-1, WNOHANG)`` in a loop
until nothing is left to reap.  A slow poll (once a second) is the safety net
for a SIGCHLD that arrived before the handler existed.  For each reaped pid,
``sig_child`` watchers get their event first (``'CHLD', pid, status, extra...``),
then the kernel broadcasts the ``CHLD`` signal with ARG1 = pid and ARG2 = the
raw wait status.  A pid watch keeps its session alive until the pid is reaped.

Like POE, the reaper takes *every* exited child of the process, including
those started with :mod:`subprocess` while it runs; ``Popen.wait()`` then
sees ECHILD.  Use ``sig_child`` for such children instead.
"""

from __future__ import annotations

import os
import signal as _signal
from typing import Any

from ._core import log
from ._event import ET_SIGCLD, ET_SIGNAL
from ._session import Session
from ._signals import SessionWatcher, SignalsAPI

__all__ = ["ChildrenAPI", "exit_code", "exit_signal"]

#: Seconds between safety-net reaps while someone waits for children.
REAP_POLL_INTERVAL = 1.0


def exit_code(status: int) -> int | None:
    """The exit code in a raw wait status, or None if a signal ended it."""
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else None


def exit_signal(status: int) -> int | None:
    """The signal number that ended a child, or None if it exited."""
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else None


class ChildrenAPI(SignalsAPI):
    """``sig_child`` and the reaper."""

    _pid_watchers: dict[int, dict[Session, tuple[str, tuple[Any, ...]]]]
    _have_children: bool
    _reap_needed: bool
    _last_reap: float
    _chld_handler_installed: bool

    def sig_child(self, pid: int, event: str | None = None, *extra: Any) -> None:
        """Watch child ``pid`` once: ``event`` gets ``('CHLD', pid, status,
        *extra)`` when it is reaped (``$kernel->sig_child``).  Without
        ``event``, stop watching it (only if this session watches it)."""
        session = self._active_session
        if not isinstance(session, Session):
            return
        watchers = self._pid_watchers.get(pid)
        if event is None:
            if watchers is not None and watchers.pop(session, None) is not None:
                if not watchers:
                    del self._pid_watchers[pid]
                session._pids.pop(pid, None)
                self._unref(session)
                self._child_interest_changed()
            return
        if watchers is None:
            watchers = self._pid_watchers[pid] = {}
        if session not in watchers:
            session._refs += 1
        watchers[session] = (event, extra)
        session._pids[pid] = (event, extra)
        self._have_children = True
        self._reap_needed = True
        self._child_interest_changed()

    def _child_interest(self) -> bool:
        return bool(self._pid_watchers) or any(
            type(w) is SessionWatcher for w in self.events.listeners("CHLD")
        )

    def _child_interest_changed(self) -> None:
        wanted = self._child_interest()
        if wanted and not self._chld_handler_installed:
            self._set_os_handler(_signal.SIGCHLD, True)
            self._chld_handler_installed = True
            self._reap_needed = True
        elif not wanted and self._chld_handler_installed:
            self._set_os_handler(_signal.SIGCHLD, False)
            self._chld_handler_installed = False

    def _waiting_for_children(self) -> bool:
        return self._have_children and self._child_interest()

    def _reap(self) -> None:
        """Reap every exited child and queue its events (sig_child first)."""
        self._reap_needed = False
        self._last_reap = self._clock()
        if not self._child_interest():
            return
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self._have_children = False
                return
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            if pid == 0:
                self._have_children = True
                return
            log.debug("%d: reaped %d status %d", os.getpid(), pid, status)
            watchers = self._pid_watchers.pop(pid, None)
            if watchers:
                for session, (event, extra) in watchers.items():
                    session._pids.pop(pid, None)
                    # The queued event holds the session now ("to" ref).
                    self._enqueue(session, self, event, ("CHLD", pid, status, *extra), ET_SIGCLD)
                    session._refs -= 1
                if not self._pid_watchers:
                    # The last pid watch went: the SIGCHLD handler may go too.
                    self._child_interest_changed()
            self._enqueue(self, self, "_signal", ("CHLD", pid, status), ET_SIGNAL)
            if not self._chld_handler_installed:
                return

    def _release_session_resources(self, session: Session) -> None:
        if session._pids:
            for pid in list(session._pids):
                watchers = self._pid_watchers.get(pid)
                if watchers is not None:
                    watchers.pop(session, None)
                    if not watchers:
                        del self._pid_watchers[pid]
            session._pids.clear()
            self._child_interest_changed()
        super()._release_session_resources(session)

    def _forget_children(self) -> None:
        """In a forked child: the parent's children are not ours to wait for."""
        for pid, watchers in self._pid_watchers.items():
            for session in watchers:
                session._pids.pop(pid, None)
                self._unref(session)
        self._pid_watchers.clear()
        self._have_children = False
        self._reap_needed = False
        self._child_interest_changed()
