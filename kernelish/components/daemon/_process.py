"""The process-level jobs of a daemon: detach, logfile, privileges.

Each is a port of a method of POE::Component::Daemon (``detach``,
``open_logfile``, ``drop_privs``) as a plain function; the component calls
them in the seed's order from ``spawn()``: logfile, privileges, detach.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pwd
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from kernelish._activation import inherited_sockets

__all__ = [
    "PrivilegeError",
    "detach",
    "die_with_parent",
    "drop_privs",
    "install_log_handler",
    "load_prctl",
    "open_logfile",
]

log = logging.getLogger("kernelish.daemon")


class PrivilegeError(RuntimeError):
    """Dropping privileges did not stick (root could be regained)."""


def detach() -> None:
    """Leave the terminal and the parent's process tree (``detach``).

    Forks twice; the grandchild calls ``setsid()`` and carries on as the
    daemon, the two parents exit 0 at once.  Standard input becomes
    ``/dev/null`` so that nothing waits on a terminal that went away.
    """
    # Sockets systemd passed are read now: after the forks our pid no longer
    # matches LISTEN_PID.
    inherited_sockets()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if os.fork():
        os._exit(0)
    if os.fork():
        os._exit(0)
    try:
        os.setsid()
    except OSError as exc:  # pragma: no cover - only if already a group leader
        log.warning("%d: Unable to setsid(): %s (continuing anyway)", os.getpid(), exc)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


def open_logfile(path: Path) -> None:
    """Send stdout and stderr to ``path`` at the file-descriptor level
    (``open_logfile``): C code and child processes write there too.

    The file is opened for appending and created with mode 0640 (less what
    the umask takes away); every line is written as it ends.  Called again,
    it reopens the file -- how log rotation works (on SIGHUP).
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(Exception):
                reconfigure(line_buffering=True)


class _PidFormatter(logging.Formatter):
    """``$$: message`` -- the seed's ``warn "$$: ..."`` lines (messages
    that already start with the pid are left as they are)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"{record.process}: "
        return text if text.startswith(prefix) else prefix + text


def install_log_handler(verbose: bool) -> None:
    """Send kernelish's log records to stderr (the logfile once opened),
    one line each with the pid first, unless the program configured
    logging for ``kernelish`` itself."""
    logger = logging.getLogger("kernelish")
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_PidFormatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def drop_privs(uid: int | None, gid: int | None, user: str | None, logfile: Path | None) -> None:
    """Become ``uid``/``gid`` for good (``drop_privs``; the seed left it a TODO).

    Order matters: supplementary groups, then the gid, then the uid -- once
    the uid is dropped the process may no longer change its groups.  Real,
    effective and saved ids all change, and the drop is verified: if
    ``setuid(0)`` still works afterwards, :class:`PrivilegeError`.  The
    logfile is handed to the new owner so a reopen on SIGHUP still works.
    """
    if uid is None and gid is None:
        return
    if gid is None and uid is not None:
        gid = pwd.getpwuid(uid).pw_gid
    if logfile is not None and logfile.exists():
        os.chown(logfile, -1 if uid is None else uid, -1 if gid is None else gid)
    assert gid is not None
    if user is None and uid is not None:
        with contextlib.suppress(KeyError):
            user = pwd.getpwuid(uid).pw_name
    if user is not None:
        os.initgroups(user, gid)
    else:
        os.setgroups([gid])
    os.setresgid(gid, gid, gid)
    if uid is not None:
        os.setresuid(uid, uid, uid)
        if uid != 0:
            try:
                os.setuid(0)
            except PermissionError:
                pass
            else:
                raise PrivilegeError("root privileges could be regained after drop_privs")
    log.info("%d: dropped privileges to uid=%s gid=%d", os.getpid(), uid, gid)


_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None = None
_prctl_loaded = False


def load_prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, looked up once -- in the parent, before forking, so
    a child's start stays lean.  ``CDLL(None)`` is the symbols the
    interpreter is linked with (libc's among them): no ``ctypes.util``,
    whose imports (subprocess, tempfile, random with its at-fork reseed)
    every child would otherwise pay for."""
    global _prctl, _prctl_loaded
    if not _prctl_loaded:
        _prctl_loaded = True
        with contextlib.suppress(OSError, AttributeError):
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
    return _prctl


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies
    (``prctl(PR_SET_PDEATHSIG)``), so a pool child never outlives a parent
    that was SIGKILLed.  A no-op where prctl is unavailable."""
    prctl = load_prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
