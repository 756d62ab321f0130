"""The process-level half of ``spawn()``: logfile, privileges, detach -- each once.

The seed's ``open_logfile``, ``drop_privs`` and ``detach`` are methods of the
component, which ``spawn()`` calls in that order and which a program may also
call itself (``$daemon->drop_privs`` in a ``new``-then-``spawn`` program): so
each runs at most once per process.  :class:`ProcessSetup` remembers what ran
and the one fact that links two of them: whether ``open_logfile`` *created*
the logfile, the only case in which ``drop_privs`` hands it to the service
user (by descriptor; see :func:`~._process.drop_privs`).

``open_logfile`` is two steps, so that ``spawn()`` can fork the waiting
launcher between them (:meth:`open_log`, then :meth:`use_log`): the launcher
must exist before stderr becomes the logfile, and the logfile must be opened
-- and refused, on the terminal -- before the launcher forks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from . import _process
from ._config import DaemonSettings
from ._process import log

__all__ = ["ProcessSetup"]


class ProcessSetup:
    """What of logfile, privileges and detach this process has done."""

    def __init__(self) -> None:
        self.done: set[str] = set()
        #: open_log opened (or, with only ``verbose``, chose) a log to use.
        self.log_pending = False
        #: open_log created the logfile (so drop_privs may hand it over).
        self.logfile_created = False

    def once(self, what: str) -> bool:
        """True the first time ``what`` is asked for, False after."""
        if what in self.done:
            return False
        self.done.add(what)
        return True

    def open_log(self, config: DaemonSettings) -> int | None:
        """Open the logfile (safely: see :func:`~._process.open_log_descriptor`),
        once; its descriptor, or None."""
        self.log_pending = False
        if (config.logfile is None and not config.verbose) or not self.once("logfile"):
            return None
        self.log_pending = True
        if config.logfile is None:
            return None
        fd, self.logfile_created = _process.open_log_descriptor(config.logfile)
        return fd

    def use_log(self, fd: int | None, verbose: bool, stderr_ready: Callable[[], None]) -> bool:
        """stdout/stderr to ``fd``, then kernelish's log lines; False if
        :meth:`open_log` had nothing to use.  ``stderr_ready`` runs in
        between (the launcher's copy of stderr takes the log lines too)."""
        if fd is not None:
            _process.log_to(fd)
        stderr_ready()
        if not self.log_pending:
            return False
        self.log_pending = False
        _process.install_log_handler(verbose)
        return True

    def reopen_log(self, logfile: Path) -> None:
        """Reopen the logfile (HUP: log rotation).  A rotation gone wrong
        (directory gone, no permission, disk full) must not take the server
        down: the old file is kept, and the error said in it."""
        try:
            _process.open_logfile(logfile)
        except (OSError, _process.LogfileError) as exc:
            log.error(
                "%d: SIGHUP: cannot reopen %s: %s; still logging to the old file",
                os.getpid(),
                logfile,
                exc,
            )

    def drop_privs(self, config: DaemonSettings) -> None:
        """Become ``user``/``group`` for good; once."""
        if self.once("drop_privs"):
            user = config.user if isinstance(config.user, str) else None
            # fd 2 is the logfile open_log made; never chown by path.
            hand_over = 2 if self.logfile_created else None
            _process.drop_privs(config.uid, config.gid, user, hand_over)

    def detach(self, config: DaemonSettings) -> None:
        """Fork twice and ``setsid()``; once, and only if asked."""
        if config.detach and self.once("detach"):
            _process.detach()
