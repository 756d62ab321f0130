"""The parent's side of a Run child's stdout and stderr: reading until end
of file, records to events, CloseEvent once both ended.

See :mod:`kernelish.wheels._run` for the events and their POE semantics;
this is the machinery under them, a base class of :class:`Run` that keeps
the wheel's public methods in one place.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from ..drivers import Driver, SysRW
from ..filters import Filter, FilterError, Line, RecordTooLong
from ._base import MODE_READ, Wheel
from ._conduit import End
from ._readwrite import _Replay

__all__ = ["READ_BATCH", "OutputWheel"]

#: Reads per readiness of an output stream, while each fills the block.
READ_BATCH = 4


class _Output:
    """One of the child's output streams, as the parent reads it."""

    __slots__ = (
        "block_size",
        "done",
        "driver",
        "event",
        "fd",
        "filter",
        "handle",
        "holds_back",
        "name",
        "paused",
        "reading",
    )

    def __init__(
        self,
        name: str,
        handle: End | None,
        filt: Filter[Any],
        driver: Driver,
        event: str | None,
    ) -> None:
        self.name = name
        self.handle = handle
        self.fd = handle.fd if handle is not None else -1
        self.filter = filt
        #: the filter may hold records back for its next call (Line, behind
        #: an overlong line); isinstance of an ABC is too slow per read
        self.holds_back = isinstance(filt, Line)
        self.driver = driver
        # Non-zero for a plain SysRW, whose read is inlined.
        self.block_size = driver.block_size if type(driver) is SysRW else 0
        self.event = event
        self.reading = False
        self.paused = False
        #: end of file (or a read or filter error) was reported, or the
        #: stream has no conduit (POE keeps its filter all the same)
        self.done = handle is None


class OutputWheel(Wheel):
    """A wheel that reads a child's stdout and stderr (:class:`Run`'s base)."""

    __slots__ = ("_close_event", "_closed", "_error_event", "_pty", "_replay", "_stderr", "_stdout")

    # Set by Run's constructor.
    _stdout: _Output
    _stderr: _Output
    _pty: bool
    _error_event: str | None
    _close_event: str | None
    _closed: bool
    _replay: _Replay | None

    def _start_reading(self, out: _Output) -> None:
        if out.event is None or out.handle is None or out.reading or out.done:
            return
        out.reading = True
        out.paused = False
        method = OutputWheel._on_stdout if out is self._stdout else OutputWheel._on_stderr
        # A read that filled the block is likely to have more behind it: up
        # to READ_BATCH reads per readiness, without a selector round trip.
        self.watch(out.handle, MODE_READ, method, repeat=READ_BATCH)

    def _stop_reading(self, out: _Output) -> None:
        if out.reading and out.handle is not None:
            out.reading = False
            self.unwatch(out.handle, MODE_READ)

    def _on_stdout(self) -> bool:
        return self._read(self._stdout)

    def _on_stderr(self) -> bool:
        return self._read(self._stderr)

    def _read(self, out: _Output) -> bool:
        """One driver read, every record to the stream's event.  True when
        the read filled the driver's block (more is likely waiting)."""
        try:
            if out.block_size:
                data = os.read(out.fd, out.block_size)
                chunks: list[bytes] | None = [data] if data else None
                full = len(data) == out.block_size
            else:
                chunks = out.driver.get(out.fd)
                if chunks is not None and not chunks:
                    return False
                full = False
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno == errno.EIO and self._pty:
                chunks = None  # the child side of the pty is closed: its end of file
            else:
                self._ended(out, exc.errno or 0, exc.strerror or str(exc))
                return False
        if chunks is None:
            self._ended(out, 0, "")
            return False
        filt = out.filter
        while True:
            before = filt.get_pending()
            try:
                records = filt.get(chunks)
            except FilterError as exc:
                self._filter_failed(out, exc)
                return False
            if records:
                self._deliver(out, filt, records, chunks, before)
            if not records or out.filter is not filt or not out.holds_back:
                return full and out.reading and not out.paused
            # Once more with nothing new: Line holds an overlong line's
            # error (and the records after it) back for its next call.
            chunks = []

    def _parse_rest(self, out: _Output, filt: Filter[Any], chunks: Any = ()) -> None:
        """Deliver what ``filt`` still holds (after a filter switch, or a
        deferred filter error)."""
        try:
            records = filt.get(chunks)
        except FilterError as exc:
            self._filter_failed(out, exc)
            return
        if records:
            self._deliver(out, filt, records, [], None)

    def _deliver(
        self,
        out: _Output,
        filt: Filter[Any],
        records: list[Any],
        chunks: list[bytes],
        before: list[bytes] | None,
    ) -> None:
        """Call the stream's event for each record, in order; a handler that
        switches the filter mid-chunk hands the rest to the new one (see
        ReadWrite's ``_deliver``)."""
        session = self._session_ref()
        if session is None or not session.alive:
            return
        if len(records) == 1:  # the common case, without the replay's upkeep
            event = out.event
            if event is not None:
                self._kernel.deliver(session, event, (records[0], self._id))
            return
        deliver = self._kernel.deliver
        wheel_id = self._id
        replay = _Replay(filt, before, chunks, len(records)) if len(records) > 1 else None
        self._replay = replay
        try:
            for index, record in enumerate(records):
                event = out.event
                if event is None or out.filter is not filt:
                    return
                if replay is not None:
                    replay.index = index
                deliver(session, event, (record, wheel_id))
        finally:
            if self._replay is replay:
                self._replay = None

    def _filter_failed(self, out: _Output, exc: FilterError) -> None:
        exc.__traceback__ = None  # see ReadWrite._filter_failed
        if isinstance(exc, RecordTooLong):
            self._ended(out, errno.EMSGSIZE, "record too long")
        else:
            self._ended(out, exc.errno, str(exc))

    def _ended(self, out: _Output, errnum: int, errstr: str) -> None:
        """A stream's end of file (or read error): ErrorEvent, and
        CloseEvent when it was the last stream read."""
        self._stop_reading(out)
        out.done = True
        self.emit(self._error_event, "read", errnum, errstr, self._id, out.name)
        self._maybe_closed()

    def _maybe_closed(self) -> None:
        if self._closed:
            return
        if not (self._stdout.done and self._stderr.done):
            return
        self._closed = True
        self.emit(self._close_event, self._id)

    def _pause(self, out: _Output, paused: bool) -> None:
        if out.handle is None or not out.reading:
            return
        out.paused = paused
        if paused:
            self._kernel.select_pause_read(out.handle)
        else:
            self._kernel.select_resume_read(out.handle)

    def _switch(self, out: _Output, new_filter: Filter[Any]) -> None:
        old = out.filter
        replay = self._replay
        if replay is not None and replay.filter is old and replay.index + 1 < replay.count:
            pending = replay.rest()
        else:
            pending = old.get_pending()
        self._replay = None
        out.filter = new_filter
        out.holds_back = isinstance(new_filter, Line)
        if pending and not out.done:
            self._parse_rest(out, new_filter, pending)
