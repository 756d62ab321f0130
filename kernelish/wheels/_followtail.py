"""FollowTail: follow the end of an ever-growing file
(POE::Wheel::FollowTail).

Discussion
----------
POE follows a file by polling it: every ``PollInterval`` seconds it reads
what was appended, and at end of file it ``stat``\\ s the path to see whether
the file was rotated (another inode at the path) or truncated (smaller than
the offset reached), reopening it with a ``ResetEvent``.  A pipe, socket or
terminal given as ``Handle`` is read when it is readable instead.  We keep
that model (no inotify: polling works on every file system, NFS included),
the parameters, the events and their argument positions, and POE's start
(POE-SEMANTICS 9: 4,096 octets back from the end, the complete records up to
the end thrown away, unless ``Seek`` / ``SeekBack`` says where to start).

Where POE 1.370 loses or repeats lines, we do not:

* **Rotation by rename.**  When the path names a new file, POE opens it at
  once and forgets the old one; what the writer still appends to the old
  file before it reopens (logrotate's ``create`` + HUP leaves a window) is
  lost.  We read the old file to its end *before* the new one, and keep
  reading it as a *retired* file, ahead of the new one on every poll, until
  it has not grown for ``max(1 s, 5 PollIntervals)`` -- then it is closed.
  A single writer writes the old file before the new one, so its lines
  still come in order.
* **Truncation under a busy writer** (``copytruncate``).  POE only sees a
  file smaller than its offset; a file truncated and grown back past the
  offset before the next poll passes unnoticed, and the reading resumes in
  the middle of new lines.  We also keep the last 64 octets read and compare
  them with what the file holds there now (one ``pread`` when it grew).
* **Hard links and unlinking.**  POE takes a change of the link count for a
  reset, and reads the whole file again from 0: a backup tool's hard link
  repeats every line.  Only the inode and the size count here.
* **Every poll drains the file.**  POE reads one block per timer event and
  re-arms a 0 s timer for the next, a trip through the queue per 64 kB; we
  read to the end of the file in one pass, bounded (1 MiB per dispatch
  pass, the next pass going on at once) so that a huge backlog never
  stalls the other sessions.
* **A path that disappears or becomes unreadable.**  POE waits for a
  missing path, silently waits when it cannot open it (EACCES), and stops
  for good on any other ``stat`` error.  We keep reading the open file while
  the path is gone or unreachable, report each new ``open`` / ``stat`` error
  once as an ErrorEvent, and go on polling: the file is followed again,
  with a ResetEvent, when it comes back.  Only a read error on the open file
  stops the wheel, as in POE.
* **tell()** gives the offset just after the last complete record, not the
  read-ahead offset POE's BUGS section admits to: saved at exit and given
  back as ``Seek``, it loses and repeats nothing.

The poll is cheap: one ``stat`` of the path (``fstat`` of a Handle), and a
read only when the size changed.  The hostile case -- a daemon running as
root, tailing a file in a directory its service user can write -- is met
by opening with ``O_NOFOLLOW`` unless ``FollowSymlinks`` is given,
``O_NONBLOCK`` and ``O_NOCTTY``, and by following only regular files and
FIFOs.  Memory is bounded by the filter (Line: MaxLength, MaxBuffer), one
pass's 1 MiB, and at most 8 retired files.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from typing import TYPE_CHECKING, Any

from .._params import LazyParams, ParameterError
from .._watchers import fileno_of
from ..drivers import Driver, SysRW
from ..filters import Filter, Line
from ._base import MODE_READ
from ._tailfile import TailedFile, open_followed, start_offset
from ._tailreader import PASS_BUDGET, TailReader

if TYPE_CHECKING:
    from ._followtail_params import FollowTailParams

__all__ = ["FollowTail"]

#: Retired files kept open at most (the oldest is closed first).
_MAX_RETIRED = 8
#: A retired file is closed once it has not grown for this many polls...
_QUIET_POLLS = 5
#: ... and at least this many seconds.
_QUIET_FLOOR = 1.0


#: FollowTail's parameters (the model: :mod:`._followtail_params`); one per
#: followed file, so always through pydantic.
_PARAMS = LazyParams("FollowTail", "kernelish.wheels._followtail_params:FollowTailParams")


def _refuse(message: str, *names: str) -> ParameterError:
    return ParameterError(f"FollowTail: {message}", owner="FollowTail", params=names)


class FollowTail(TailReader):
    """Follow the end of a file, by name or by handle (port of
    POE::Wheel::FollowTail).

    ``FollowTail(Filename='/var/log/app.log', InputEvent='got_line',
    ResetEvent='got_rollover')`` calls ``got_line(record, wheel_id)`` for
    every record appended to the file (:class:`~kernelish.filters.Line` by
    default), follows it through rotation and truncation (``ResetEvent(wheel_id)``)
    and polls every ``PollInterval`` seconds (1 by default).  ``Handle``
    follows an open file (polled) or a pipe, socket or terminal (read when
    readable).  ``ErrorEvent(operation, errnum, errstr, wheel_id)`` reports
    trouble, ``IdleEvent(wheel_id)`` a poll that found nothing new.  See the
    module notes for what differs from POE.
    """

    __slots__ = (
        "_current",
        "_follow_symlinks",
        "_grace",
        "_handle",
        "_idle_event",
        "_interval",
        "_last_error",
        "_path",
        "_reset_event",
        "_retired",
        "_selecting",
        "_timer",
    )

    def __init__(self, **params: Any) -> None:
        p: FollowTailParams = _PARAMS.parse(params)
        self._path: str | bytes | None = p.filename
        self._follow_symlinks = p.follow_symlinks
        self._current: TailedFile | None = None
        self._handle: Any = p.handle
        self._last_error: tuple[str, int] | None = None
        self._selecting = False
        if p.filename is not None:
            opened = self._open_at_start(p.filename)
        else:
            opened = self._check_handle_at_start(p)
        super().__init__(
            p.filter if p.filter is not None else Line(),
            p.driver if p.driver is not None else SysRW(),
            p.input_event,
        )
        self._interval = p.poll_interval
        self._grace = max(_QUIET_FLOOR, _QUIET_POLLS * p.poll_interval)
        self._reset_event = p.reset_event
        self._error_event = p.error_event
        self._idle_event = p.idle_event
        self._retired: list[TailedFile] = []
        self._timer: int | None = None
        if p.handle is not None:
            self.hold(p.handle)
        if opened is not None:
            fd, st = opened
            if not stat.S_ISREG(st.st_mode):
                self._current = TailedFile(fd, st, 0, owned=p.handle is None)
                self._start_selecting()
                return
            start = start_offset(st.st_size, p.seek, p.seek_back)
            self._current = TailedFile(fd, st, start, owned=p.handle is None)
            self._current.prime()
            if p.seek is None and p.seek_back is None:
                self._skip_records(self._current)
        # POE: the first poll comes at once (``delay(..., 0)``).
        self._timer = self.defer(FollowTail._poll, 0.0)

    def _open_at_start(self, path: str | bytes) -> tuple[int, os.stat_result] | None:
        """Open the file at construction: None if it is not there (or not
        readable yet: the first poll reports that), a ParameterError if it
        can never be followed."""
        try:
            return open_followed(path, self._follow_symlinks)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.EISDIR:
                raise _refuse(f"Filename {path!r} is a directory", "Filename") from None
            if exc.errno == errno.EINVAL:
                raise _refuse(
                    f"Filename {path!r} is not a regular file or a FIFO", "Filename"
                ) from None
            if exc.errno == errno.ELOOP and not self._follow_symlinks:
                raise _refuse(
                    f"Filename {path!r} is a symbolic link; give FollowSymlinks=True to follow it",
                    "Filename",
                ) from None
            return None  # not readable yet: the first poll reports it

    @staticmethod
    def _check_handle_at_start(p: FollowTailParams) -> tuple[int, os.stat_result]:
        try:
            fd = fileno_of(p.handle)
            st = os.fstat(fd)
        except (OSError, ValueError) as exc:
            raise _refuse(f"Handle is not an open file ({exc})", "Handle") from None
        if stat.S_ISDIR(st.st_mode):
            raise _refuse("FollowTail does not tail directories", "Handle")
        if not stat.S_ISREG(st.st_mode) and (p.seek is not None or p.seek_back is not None):
            name = "Seek" if p.seek is not None else "SeekBack"
            raise _refuse(f"{name} needs a regular file; Handle is a pipe, socket or device", name)
        return fd, st

    # -- polling ------------------------------------------------------------------

    def _poll(self) -> None:
        """One poll: the retired files, then the followed one; IdleEvent if
        nothing happened.  The next poll is armed first, so a handler's
        exception never ends the following."""
        self._timer = self.defer(FollowTail._poll, self._interval)
        if self._held:
            self._deliver_held()
        self._budget = PASS_BUDGET
        self._active = False
        now = time.monotonic()
        if self._retired:
            self._drain_retired(now)
        if self._path is not None:
            self._follow_path(now)
        elif self._current is not None:
            self._follow_handle(self._current)
        if self._stopped or self._selecting:
            return
        if self._budget <= 0:
            # More is waiting: go on in the next dispatch pass.
            self.cancel(self._timer)
            self._timer = self.defer(FollowTail._poll, 0.0)
        elif not self._active:
            self.emit(self._idle_event, self._id)

    def _follow_path(self, now: float) -> None:
        """Filename mode: follow the file the path names, through rotation."""
        current = self._current
        path = self._path
        assert path is not None
        try:
            st: os.stat_result | None = os.stat(path) if self._follow_symlinks else os.lstat(path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            # The path cannot be looked at (a directory made unreadable...):
            # go on with the open file, and look again next time.
            self._report("stat", exc)
            if current is not None:
                self._follow_handle(current)
            return
        if current is not None:
            if st is not None and current.same_file(st):
                self._last_error = None
                self._follow(current, st.st_size)
                return
            # Rotated, or gone: read the old file to its end before anything else.
            if not self._drain(current):
                return
            self._current = None
            self._retire(current, now)
        if st is not None:
            self._open_path()

    def _follow_handle(self, tailed: TailedFile) -> None:
        """Handle mode (and a path that cannot be stat'ed): ``fstat``."""
        try:
            size = tailed.size()
        except OSError as exc:
            self._read_failed(tailed, exc)
            return
        self._follow(tailed, size)

    def _follow(self, tailed: TailedFile, size: int) -> None:
        """Read what was appended; a truncated (or truncated and rewritten)
        file is a reset, read again from 0."""
        if size < tailed.pos or (size > tailed.pos and tailed.rewritten()):
            tailed.rewind()
            self._active = True
            self.emit(self._reset_event, self._id)
        if size > tailed.pos:
            self._read(tailed)

    def _open_path(self) -> None:
        """Open the file now at the path: a ResetEvent, then its records from 0."""
        assert self._path is not None
        try:
            fd, st = open_followed(self._path, self._follow_symlinks)
        except FileNotFoundError:
            return
        except OSError as exc:
            self._report("open", exc)
            return
        self._last_error = None
        self._current = TailedFile(fd, st, 0, owned=True)
        self._active = True
        if not stat.S_ISREG(st.st_mode):
            self._start_selecting()
            self.emit(self._reset_event, self._id)
            return
        self.emit(self._reset_event, self._id)
        self._read(self._current)

    # -- retired files ------------------------------------------------------------

    def _drain(self, tailed: TailedFile) -> bool:
        """Read ``tailed`` to its end; False if the pass's budget ran out first."""
        try:
            size = tailed.size()
        except OSError as exc:
            self._read_failed(tailed, exc)
            return True
        if size <= tailed.pos:
            return True
        return self._read(tailed)

    def _retire(self, tailed: TailedFile, now: float) -> None:
        tailed.last_growth = now
        self._retired.append(tailed)
        while len(self._retired) > _MAX_RETIRED:
            self._retired.pop(0).close()

    def _drain_retired(self, now: float) -> None:
        """Read what was appended to the retired files (a writer that has
        not reopened its log yet); close those quiet for the grace period."""
        kept: list[TailedFile] = []
        for tailed in self._retired:
            if tailed.fd < 0:
                continue
            before = tailed.pos
            if self._budget <= 0 or not self._drain(tailed):
                kept.append(tailed)
                continue
            if tailed.pos != before:
                tailed.last_growth = now
            if tailed.fd >= 0 and now - tailed.last_growth < self._grace:
                kept.append(tailed)
            else:
                tailed.close()
        self._retired = kept

    # -- errors ----------------------------------------------------------------------

    def _read_failed(self, tailed: TailedFile, exc: OSError) -> None:
        """A read error: a retired file is dropped; on the followed file
        the wheel stops, as POE's does."""
        if tailed is self._current:
            self._stop()
        else:
            tailed.close()
        self.emit(self._error_event, "read", exc.errno or 0, exc.strerror or str(exc), self._id)

    def _report(self, operation: str, exc: OSError) -> None:
        """ErrorEvent for an ``open`` / ``stat`` error, once until it changes."""
        key = (operation, exc.errno or 0)
        if key != self._last_error:
            self._last_error = key
            self._active = True
            self.emit(self._error_event, operation, key[1], exc.strerror or str(exc), self._id)

    def _stop(self) -> None:
        self._stopped = True
        self.cancel(self._timer)
        self._timer = None

    # -- select mode ----------------------------------------------------------------

    def _start_selecting(self) -> None:
        """A pipe, FIFO, socket or terminal: read it when it is readable."""
        current = self._current
        assert current is not None
        self._selecting = True
        self.cancel(self._timer)
        self._timer = None
        os.set_blocking(current.fd, False)
        self.watch(current.fd, MODE_READ, FollowTail._on_readable)

    def _on_readable(self) -> None:
        if self._held:
            self._deliver_held()
        current = self._current
        if current is None:
            return
        try:
            if self._block:
                data = os.read(current.fd, self._block)
            else:
                got = self._driver.get(current.fd)
                if got is not None and not got:
                    return
                data = b"".join(got) if got else b""
        except BlockingIOError:
            return
        except OSError as exc:
            self.unwatch(current.fd, MODE_READ)
            self.emit(self._error_event, "read", exc.errno or 0, exc.strerror or "", self._id)
            return
        if not data:
            # End of file: ReadWrite's ErrorEvent (POE gives it for sockets
            # and terminals, and only an IdleEvent for a pipe).
            self.unwatch(current.fd, MODE_READ)
            self.emit(self._error_event, "read", 0, "", self._id)
            return
        self._parse((data,))

    # -- the public methods -----------------------------------------------------------

    def tell(self) -> int | None:
        """The offset in the followed file just after the last complete
        record read (``tell``): give it back as ``Seek`` after a restart to
        go on where this left off.  None for a pipe, or with no file open.

        POE returns the read offset, past a partial record still in the
        filter (its BUGS section); this one does not count those octets."""
        current = self._current
        if current is None or self._selecting:
            return None
        pending = self._filter.get_pending()
        held = sum(len(chunk) for chunk in pending) if pending else 0
        return max(0, current.pos - held)

    def event(self, **events: str | None) -> None:
        """Rename events (``event``): InputEvent, ResetEvent, ErrorEvent,
        IdleEvent (or snake_case); None turns one off (not InputEvent)."""
        for name, value in events.items():
            key = _EVENT_NAMES.get(name)
            if key is None:
                raise _refuse(f"event: unknown event parameter {name!r}", name)
            if value is not None and not isinstance(value, str):
                raise _refuse(f"event: {name} must be an event name (got {value!r})", name)
            if key == "_input_event" and value is None:
                raise _refuse("event: InputEvent requires an event name", name)
            setattr(self, key, value)

    def get_filter(self) -> Filter[Any]:
        """The filter records are parsed with."""
        return self._filter

    def get_driver(self) -> Driver:
        """The driver files are read with."""
        return self._driver

    # -- lifetime ---------------------------------------------------------------------

    def _forget_handles(self) -> None:
        current, self._current = self._current, None
        if current is not None:
            if self._selecting and current.fd >= 0:
                self.unwatch(current.fd, MODE_READ)  # before its fd is closed
            current.close()
        retired, self._retired = self._retired, []
        for tailed in retired:
            tailed.close()
        self._handle = None


_EVENT_NAMES = {
    spelling: f"_{field}"
    for field in ("input_event", "reset_event", "error_event", "idle_event")
    for spelling in (field, "".join(part.title() for part in field.split("_")))
}
