"""The process-level jobs of a daemon: detach, logfile, privileges.

Each is a port of a method of POE::Component::Daemon (``detach``,
``open_logfile``, ``drop_privs``) as a plain function; the component calls
them in the seed's order from ``spawn()``: logfile, privileges, detach.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pwd
import signal
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from kernelish._activation import inherited_sockets

__all__ = [
    "LogfileError",
    "PrivilegeError",
    "detach",
    "die_with_parent",
    "drop_privs",
    "install_log_handler",
    "kill",
    "load_prctl",
    "log_to",
    "note",
    "open_log_descriptor",
    "open_logfile",
]

log = logging.getLogger("kernelish.daemon")


def note(verbose: bool, fmt: str, *args: object) -> None:
    """A line of the seed's ``verbose`` chatter (``warn "$$: ..."``): only
    with ``verbose``, and no formatting work without it."""
    if verbose:
        log.info("%d: " + fmt, os.getpid(), *args)


def kill(pid: int, sig: int) -> bool:
    """Send ``sig`` to the Daemon's child ``pid``; False if it is gone (or
    the kill failed, which is logged)."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    except OSError as exc:
        log.warning("%d: Killing %d: %s", os.getpid(), pid, exc)
        return False
    return True


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


class LogfileError(RuntimeError):
    """The logfile cannot be opened safely: a symbolic link, not a regular
    file, a file with other names (hard links), or an open that failed.
    The message names the path."""


#: open(2) flags of the logfile: append, never a controlling terminal, never
#: through a symbolic link, and non-blocking until it is known to be a
#: regular file (opening a FIFO for writing would otherwise wait forever).
_LOG_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK


def open_log_descriptor(path: Path) -> tuple[int, bool]:
    """Open ``path`` for appending, safely; ``(fd, created)``.

    The logfile usually lives in a directory its service user owns, and the
    daemon opens it as root: whatever is at the path may have been planted
    there.  So a symbolic link is refused (``O_NOFOLLOW``), and so is
    anything but a regular file with exactly one name -- a hard link to
    ``/etc/shadow`` would otherwise receive the log (see docs/security.md).
    ``created`` says that this call made the file (``O_EXCL``), which is
    the only case in which :func:`drop_privs` hands it to the service user.
    """
    where = repr(str(path))
    for _attempt in range(3):
        try:
            fd = os.open(path, _LOG_FLAGS | os.O_CREAT | os.O_EXCL, 0o640)
        except FileExistsError:
            pass
        except OSError as exc:
            raise LogfileError(f"cannot create logfile {where}: {exc.strerror}") from None
        else:
            os.set_blocking(fd, True)
            return fd, True
        try:
            fd = os.open(path, _LOG_FLAGS)
        except FileNotFoundError:
            continue  # removed since: create it after all
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise LogfileError(
                    f"logfile {where} is a symbolic link; refusing to follow it"
                ) from None
            if exc.errno == errno.ENXIO:  # a FIFO nobody reads
                raise LogfileError(f"logfile {where} is not a regular file") from None
            raise LogfileError(f"cannot open logfile {where}: {exc.strerror}") from None
        st = os.fstat(fd)
        problem = None
        if not stat.S_ISREG(st.st_mode):
            problem = "is not a regular file"
        elif st.st_nlink > 1:
            problem = f"has {st.st_nlink} hard links; refusing to write to a file with other names"
        if problem is not None:
            os.close(fd)
            raise LogfileError(f"logfile {where} {problem}")
        os.set_blocking(fd, True)
        return fd, False
    raise LogfileError(f"logfile {where} keeps disappearing")


def open_logfile(path: Path) -> bool:
    """Send stdout and stderr to ``path`` at the file-descriptor level
    (``open_logfile``): C code and child processes write there too.

    The file is opened for appending (:func:`open_log_descriptor`: never
    through a symbolic link, only a regular file with one name) and created
    with mode 0640 (less what the umask takes away); every line is written
    as it ends.  Called again, it reopens the file -- how log rotation works
    (on SIGHUP).  Returns whether the file was created by this call.
    """
    fd, created = open_log_descriptor(path)
    log_to(fd)
    return created


def log_to(fd: int) -> None:
    """Make ``fd`` this process's stdout and stderr (line buffered); the
    descriptor itself is closed."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
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


def drop_privs(
    uid: int | None, gid: int | None, user: str | None, hand_over: int | None = None
) -> None:
    """Become ``uid``/``gid`` for good (``drop_privs``; the seed left it a TODO).

    Order matters: supplementary groups, then the gid, then the uid -- once
    the uid is dropped the process may no longer change its groups.  Real,
    effective and saved ids all change, and the drop is verified: if
    ``setuid(0)`` still works afterwards, :class:`PrivilegeError`.

    ``hand_over`` is the descriptor of a logfile root created just now: it
    is given to the new owner (``fchown`` on the descriptor, never ``chown``
    on a path, which a planted symbolic link would redirect), so that a
    reopen on SIGHUP still works.  A logfile that already existed keeps its
    owner, as Apache's do (docs/security.md).
    """
    if gid is None:
        if uid is None:
            return
        gid = pwd.getpwuid(uid).pw_gid
    if hand_over is not None:
        os.fchown(hand_over, -1 if uid is None else uid, gid)
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
        # ctypes here, not at import: a Daemon without a pool never needs it.
        import ctypes

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
