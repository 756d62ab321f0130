"""The daemon's pidfile: written atomically, locked for the daemon's life.

Discussion
----------
A pidfile is only as good as the way it tells a live daemon from a dead one.
Reading the pid and probing it with ``kill(pid, 0)`` is wrong once the pid is
reused, so the *lock* is the truth: the daemon holds an exclusive ``flock`` on
the file for as long as it lives, and the kernel drops it when the last
descriptor of that open file goes -- also on SIGKILL.  So:

* a file that is locked belongs to a live daemon: :class:`PidfileError`, naming
  the pid written in it;
* a file that exists but is not locked is stale: it is taken over;
* the new file is written to a temporary file in the same directory (created
  with ``O_EXCL | O_NOFOLLOW``, mode 0644), locked, then moved into place:
  ``link()`` when there was no file (so that of two daemons starting at once
  only one wins), ``rename()`` over a stale file while *its* lock is held (so
  nobody else can take it over meanwhile).  A reader never sees a half-written
  pid;
* a symbolic link at the path is refused, never followed (``O_NOFOLLOW``, and
  ``rename()``/``link()`` do not follow the last component);
* the descriptor is close-on-exec; forked children inherit it, and since a
  flock belongs to the open file description, a child that kept it would keep
  the lock after its parent died -- so the component calls :meth:`close_in_child`
  in every child;
* the file is removed when the daemon ends (by the process that wrote it only).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

__all__ = ["Pidfile", "PidfileError", "is_locked", "read_pid"]


class PidfileError(RuntimeError):
    """The pidfile cannot be taken: a live daemon holds it, or the path is unsafe."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


def read_pid(path: Path) -> int | None:
    """The pid written in ``path``, or None (missing, empty, garbage)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        text = os.read(fd, 64).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    return int(text) if text.isdigit() else None


def is_locked(path: Path) -> bool:
    """Whether a live process holds the lock on ``path`` (a running daemon)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        import fcntl  # here: only a daemon with a pidfile locks one

        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _refuse_symlink(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise PidfileError(f"pidfile {str(path)!r} is a symbolic link; refusing to follow it")
    if not stat.S_ISREG(st.st_mode):
        raise PidfileError(f"pidfile {str(path)!r} exists and is not a regular file")


def _open_existing(path: Path) -> int | None:
    """Open the current pidfile and lock it; None if there is none.  Raises
    :class:`PidfileError` if a live daemon holds it."""
    _refuse_symlink(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PidfileError(
                f"pidfile {str(path)!r} is a symbolic link; refusing to follow it"
            ) from None
        raise PidfileError(f"cannot open pidfile {str(path)!r}: {exc.strerror}") from None
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid = read_pid(path)
        who = f"pid {pid}" if pid is not None else "a process"
        raise PidfileError(
            f"pidfile {str(path)!r} is locked: the daemon ({who}) is still running", pid
        ) from None
    return fd


class Pidfile:
    """The pidfile at ``path``, once :meth:`acquire` d: written, locked, ours."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.fd: int | None = None
        self.owner: int | None = None

    def check(self) -> None:
        """Refuse early (before detaching, where the error still reaches the
        terminal) if a live daemon holds the pidfile; takes nothing."""
        fd = _open_existing(self.path)
        if fd is not None:
            os.close(fd)

    def acquire(self) -> None:
        """Write this process's pid, atomically, and keep the file locked."""
        if self.fd is not None:
            return
        path = self.path
        for _attempt in range(5):
            old = _open_existing(path)
            try:
                fd, tmp = self._write_temp()
                try:
                    if old is None:
                        try:
                            os.link(tmp, path)
                        except FileExistsError:
                            os.close(fd)
                            continue  # another daemon got there first: look again
                    else:
                        os.rename(tmp, path)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
            finally:
                if old is not None:
                    os.close(old)
            self.fd = fd
            self.owner = os.getpid()
            return
        raise PidfileError(f"pidfile {str(path)!r} keeps changing; another daemon is starting")

    def _write_temp(self) -> tuple[int, Path]:
        pid = os.getpid()
        tmp = self.path.with_name(f".{self.path.name}.{pid}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileExistsError:
            os.unlink(tmp)  # our own pid's leftover: nobody else writes this name
            fd = os.open(tmp, flags, 0o644)
        try:
            os.fchmod(fd, 0o644)
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"{pid}\n".encode())
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return fd, tmp

    def close_in_child(self) -> None:
        """Drop a forked child's copy of the descriptor, so the lock goes
        with the parent."""
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def remove(self) -> None:
        """Remove the file and release the lock (only in the process that
        wrote it, and only if the file is still ours)."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            if self.owner == os.getpid():
                with contextlib.suppress(OSError):
                    mine = os.fstat(fd)
                    there = os.lstat(self.path)
                    if (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino):
                        os.unlink(self.path)
        finally:
            os.close(fd)
