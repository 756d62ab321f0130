"""The files a FollowTail wheel reads: opened safely, read by offset.

A :class:`TailedFile` is one open file and how far it has been read.  It is
read with ``pread`` at its own offset (so a Handle's shared file position is
never moved), and it remembers the last few octets it read: a file truncated
and grown back past that offset between two polls (``copytruncate`` and a
busy writer) shows other octets there, which no size comparison can see.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["SEEK_BACK_DEFAULT", "TAIL_OCTETS", "TailedFile", "open_followed", "start_offset"]

TAIL_OCTETS = 64
"""Octets kept from just before the read offset to recognise a rewritten file."""

SEEK_BACK_DEFAULT = 4096
"""POE's default start: this many octets before the end, the records up to
the end thrown away (POE-SEMANTICS 9)."""


class TailedFile:
    """One followed file: its descriptor, identity and read offset."""

    __slots__ = ("dev", "fd", "ino", "last_growth", "owned", "pos", "tail")

    def __init__(self, fd: int, st: os.stat_result, pos: int, *, owned: bool) -> None:
        self.fd = fd
        self.dev = st.st_dev
        self.ino = st.st_ino
        self.pos = pos
        #: the octets just before ``pos`` (at most TAIL_OCTETS)
        self.tail = b""
        #: whether the wheel opened the descriptor (and so closes it)
        self.owned = owned
        #: monotonic time the file last grew (for a retired file's grace)
        self.last_growth = 0.0

    def same_file(self, st: os.stat_result) -> bool:
        """Whether ``st`` describes this file (same device and inode)."""
        return st.st_ino == self.ino and st.st_dev == self.dev

    def size(self) -> int:
        """The file's size now (``fstat``)."""
        return os.fstat(self.fd).st_size

    def rewritten(self) -> bool:
        """Whether the octets before the offset differ from those read
        there: the file was truncated and has grown back past the offset."""
        tail = self.tail
        if not tail:
            return False
        try:
            return os.pread(self.fd, len(tail), self.pos - len(tail)) != tail
        except OSError:
            return False  # the read that follows reports it

    def prime(self) -> None:
        """Remember the octets before the start offset (so a rewrite is
        seen even before the first read)."""
        start = max(0, self.pos - TAIL_OCTETS)
        try:
            self.tail = os.pread(self.fd, self.pos - start, start)
        except OSError:
            self.tail = b""

    def advance(self, data: bytes) -> None:
        """Account for ``data`` read at the offset."""
        self.pos += len(data)
        if len(data) >= TAIL_OCTETS:
            self.tail = data[-TAIL_OCTETS:]
        else:
            self.tail = (self.tail + data)[-TAIL_OCTETS:]

    def rewind(self) -> None:
        """Start again from the beginning (a truncated file)."""
        self.pos = 0
        self.tail = b""

    def close(self) -> None:
        """Close the descriptor if the wheel opened it."""
        fd, self.fd = self.fd, -1
        if self.owned and fd >= 0:
            os.close(fd)

    def __repr__(self) -> str:
        return f"<TailedFile fd={self.fd} ino={self.ino} pos={self.pos}>"


def open_followed(path: str | bytes, follow_symlinks: bool) -> tuple[int, os.stat_result]:
    """Open ``path`` for following: a regular file read-only, a FIFO
    read-write (so it never reads end of file when its writers come and
    go, POE's choice).  Anything else raises :class:`OSError` (EISDIR for a
    directory, EINVAL for a device or socket) and leaves nothing open.

    ``O_NONBLOCK`` keeps the open of a FIFO planted at the path from
    blocking, ``O_NOCTTY`` a terminal from becoming ours, and without
    ``follow_symlinks``, ``O_NOFOLLOW`` makes a symlink planted in place of
    the file fail with ELOOP instead of leading elsewhere.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            return fd, st
        if stat.S_ISFIFO(st.st_mode):
            return _reopen_fifo(fd), st
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        raise OSError(errno.EINVAL, "not a regular file or a FIFO")
    except BaseException:
        os.close(fd)
        raise


def _reopen_fifo(fd: int) -> int:
    """The FIFO open on ``fd``, opened again read-write through
    ``/proc/self/fd`` (the same FIFO, whatever the path names by now);
    ``fd`` itself if that is refused (then end of file ends the reading)."""
    try:
        rw = os.open(f"/proc/self/fd/{fd}", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return fd
    os.close(fd)
    return rw


def start_offset(size: int, seek: int | None, seek_back: int | None) -> int:
    """Where reading starts in a file of ``size`` octets (POE's new()).

    Neither given: SEEK_BACK_DEFAULT before the end (or 0).  A negative
    ``Seek`` counts from the end (0 if past the start), a positive one from
    the start (the end if past it), 0 is the start; ``SeekBack`` is a
    negated ``Seek`` except that 0 is the end.
    """
    if seek is None and seek_back is None:
        return max(0, size - SEEK_BACK_DEFAULT)
    offset = -seek_back if seek_back is not None else seek
    assert offset is not None
    if offset < 0:
        return 0 if size < -offset else size + offset
    if offset > 0:
        return min(offset, size)
    return 0 if seek is not None else size
