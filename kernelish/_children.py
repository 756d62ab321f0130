"""Child processes: reaping, ``sig_child`` and the CHLD signal (POE-SEMANTICS 4.5).

Discussion
----------
While anyone is interested in children (a ``sig('CHLD')`` watcher or a
``sig_child(pid)`` watch), the kernel catches SIGCHLD and, on each SIGCHLD
the wakeup pipe carries, reaps with ``waitpid(-1, WNOHANG)`` in a loop until
nothing is left to reap.  A slow poll (once a second) is the safety net for
a SIGCHLD that arrived before the handler existed.  For each reaped pid,
``sig_child`` watchers get their event first (``'CHLD', pid, status,
extra...``), then the kernel broadcasts the ``CHLD`` signal with ARG1 = pid
and ARG2 = the raw wait status.  A pid watch keeps its session alive until
the pid is reaped.

Like POE, the reaper takes *every* exited child of the process, including
those started with :mod:`subprocess` while it runs; ``Popen.wait()`` then
sees ECHILD.  Use ``sig_child`` for such children instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from ._session import Node

__all__ = ["REAP_POLL_INTERVAL", "ChildReaper", "Reaped", "exit_code", "exit_signal"]

log = logging.getLogger("kernelish")

#: Seconds between safety-net reaps while someone waits for children.
REAP_POLL_INTERVAL = 1.0

#: One reaped child: pid, raw wait status, and the ``sig_child`` watches it
#: ended, as ``(session, event, extra)``.
Reaped = tuple[int, int, list[tuple[Node, str, tuple[Any, ...]]]]


def exit_code(status: int) -> int | None:
    """The exit code in a raw wait status, or None if a signal ended it."""
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else None


def exit_signal(status: int) -> int | None:
    """The signal number that ended a child, or None if it exited."""
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else None


class ChildReaper:
    """``sig_child`` watches and the reaper: one of the kernel's collaborators.

    ``catch_sigchld(wanted)`` catches or releases SIGCHLD (the signal hub),
    ``chld_watched()`` says whether a session watches the ``CHLD`` signal,
    ``unref(session)`` drops a session's reference.
    """

    def __init__(
        self,
        *,
        catch_sigchld: Callable[[bool], None],
        chld_watched: Callable[[], bool],
        unref: Callable[[Node], None],
    ) -> None:
        self._catch_sigchld = catch_sigchld
        self._chld_watched = chld_watched
        self._unref = unref
        self._watches: dict[int, dict[Node, tuple[str, tuple[Any, ...]]]] = {}
        #: a child may exist (we forked, or a pid is watched)
        self.have_children = False
        #: a SIGCHLD came (or a watch was added): reap at the next chance
        self.reap_needed = False
        #: when the last reap ran, on the kernel's clock
        self.last_reap = 0.0
        #: SIGCHLD is caught now
        self.catching = False

    def watch(self, session: Node, pid: int, event: str, extra: tuple[Any, ...]) -> None:
        """``sig_child(pid, event)``: ``session`` gets ``event`` when ``pid``
        is reaped (once); the watch keeps it alive until then."""
        watchers = self._watches.get(pid)
        if watchers is None:
            watchers = self._watches[pid] = {}
        if session not in watchers:
            session._refs += 1
        watchers[session] = (event, extra)
        session._pids[pid] = (event, extra)
        self.have_children = True
        self.reap_needed = True
        self.interest_changed()

    def unwatch(self, session: Node, pid: int) -> None:
        """``sig_child(pid)``: stop watching ``pid`` (if ``session`` does)."""
        watchers = self._watches.get(pid)
        if watchers is not None and watchers.pop(session, None) is not None:
            if not watchers:
                del self._watches[pid]
            session._pids.pop(pid, None)
            self._unref(session)
            self.interest_changed()

    def interested(self) -> bool:
        """Whether anyone waits for children (a pid watch or a CHLD watcher)."""
        return bool(self._watches) or self._chld_watched()

    def interest_changed(self) -> None:
        """Catch SIGCHLD while someone is interested, and only then."""
        wanted = self.interested()
        if wanted and not self.catching:
            self._catch_sigchld(True)
            self.catching = True
            self.reap_needed = True
        elif not wanted and self.catching:
            self._catch_sigchld(False)
            self.catching = False

    def waiting(self) -> bool:
        """Whether the kernel must stay up for children (not idle)."""
        return self.have_children and self.interested()

    def reap(self, now: float) -> list[Reaped]:
        """Reap every exited child (``waitpid(-1, WNOHANG)`` in a loop)."""
        self.reap_needed = False
        self.last_reap = now
        reaped: list[Reaped] = []
        if not self.interested():
            return reaped
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.have_children = False
                return reaped
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            if pid == 0:
                self.have_children = True
                return reaped
            log.debug("%d: reaped %d status %d", os.getpid(), pid, status)
            ended: list[tuple[Node, str, tuple[Any, ...]]] = []
            watchers = self._watches.pop(pid, None)
            if watchers:
                for session, (event, extra) in watchers.items():
                    session._pids.pop(pid, None)
                    ended.append((session, event, extra))
            reaped.append((pid, status, ended))
            if watchers and not self._watches:
                # The last pid watch went: SIGCHLD may be released too.
                self.interest_changed()
            if not self.catching:
                return reaped  # nobody else's children are ours to take

    def release(self, session: Node) -> None:
        """Drop every pid watch of a stopping session."""
        if session._pids:
            for pid in list(session._pids):
                watchers = self._watches.get(pid)
                if watchers is not None:
                    watchers.pop(session, None)
                    if not watchers:
                        del self._watches[pid]
            session._pids.clear()
            self.interest_changed()

    def forget(self) -> None:
        """In a forked child: the parent's children are not ours to wait for."""
        for pid, watchers in self._watches.items():
            for session in watchers:
                session._pids.pop(pid, None)
                self._unref(session)
        self._watches.clear()
        self.have_children = False
        self.reap_needed = False
        self.interest_changed()

    def watched_pids(self) -> int:
        """Number of pids watched (introspection)."""
        return len(self._watches)

    def restore(self) -> None:
        """The kernel stopped catching signals (``run()`` ended)."""
        self.catching = False
