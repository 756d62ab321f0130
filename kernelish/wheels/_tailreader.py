"""Reading followed files into records: the half of FollowTail that turns
octets at an offset into InputEvents.

A pass of the wheel reads with a budget (:data:`PASS_BUDGET` octets; then
the wheel lets other events run and goes on in the next dispatch pass), hands
each block to the filter at once, and delivers every record it gives.  A
filter error -- Line's overlong record -- is reported and the reading goes on
(the filter has resynchronised).  A handler that dies mid-batch leaves the
records it did not see for the next pass, as POE's ``get_one`` loop leaves
them in the filter.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from ..drivers import Driver, SysRW
from ..filters import Filter, FilterError, RecordTooLong
from ._base import Wheel
from ._tailfile import TailedFile

__all__ = ["PASS_BUDGET", "TailReader"]

PASS_BUDGET = 1 << 20
"""Octets one dispatch pass reads before letting other events run."""

#: Bound on the filter calls one block may take (errors, held records).
_FILTER_ROUNDS = 64


class TailReader(Wheel):
    """Reads :class:`TailedFile`\\ s through a filter and a driver and
    delivers the records (the base of :class:`FollowTail`)."""

    __slots__ = (
        "_active",
        "_block",
        "_budget",
        "_driver",
        "_error_event",
        "_filter",
        "_held",
        "_input_event",
        "_stopped",
    )

    def __init__(self, filt: Filter[Any], driver: Driver, input_event: str) -> None:
        super().__init__()
        self._filter = filt
        self._driver = driver
        # Non-zero for a plain SysRW, whose reads are inlined as pread().
        self._block = driver.block_size if type(driver) is SysRW else 0
        self._input_event = input_event
        self._error_event: str | None = None
        self._held: list[Any] = []
        #: octets the current pass may still read
        self._budget = 0
        #: whether the current pass found anything (else: IdleEvent)
        self._active = False
        #: set by a read error on the followed file: no more polls
        self._stopped = False

    def _read_block(self, tailed: TailedFile, want: int) -> bytes:
        """One read at the file's offset: ``pread`` for SysRW (the shared
        offset of a Handle is left alone), else the driver's ``get`` after a
        seek."""
        if self._block:
            return os.pread(tailed.fd, want, tailed.pos)
        os.lseek(tailed.fd, tailed.pos, os.SEEK_SET)
        got = self._driver.get(tailed.fd)
        return b"".join(got) if got else b""

    def _read(self, tailed: TailedFile) -> bool:
        """Read ``tailed`` to its end, delivering every record; False if
        the pass's budget ran out first."""
        block = self._block or PASS_BUDGET
        while self._budget > 0:
            want = min(block, self._budget)
            try:
                data = self._read_block(tailed, want)
            except OSError as exc:
                self._read_failed(tailed, exc)
                return True
            if not data:
                return True
            tailed.advance(data)
            self._budget -= len(data)
            self._active = True
            self._parse((data,))
            if self._stopped:
                return True
            if self._block and len(data) < want:
                return True  # a short read: the end of the file
        return False

    def _skip_records(self, tailed: TailedFile) -> None:
        """POE's start without Seek: read to the end through the filter and
        throw the complete records away (a partial last one stays in the
        filter, to be completed by what is appended)."""
        filt = self._filter
        budget = PASS_BUDGET
        block = self._block or PASS_BUDGET
        while budget > 0:
            try:
                data = self._read_block(tailed, block)
            except OSError:
                return  # the first poll reads again and reports it
            if not data:
                return
            tailed.advance(data)
            budget -= len(data)
            chunks: tuple[bytes, ...] = (data,)
            for _ in range(_FILTER_ROUNDS):
                try:
                    records = filt.get(chunks)
                except FilterError:
                    records = [None]  # ask again: records may follow the error
                chunks = ()
                if not records:
                    break
            if self._block and len(data) < block:
                return

    def _read_failed(self, tailed: TailedFile, exc: OSError) -> None:
        """A read error on ``tailed`` (the wheel decides what it ends)."""
        raise NotImplementedError

    # -- records ------------------------------------------------------------------------

    def _parse(self, chunks: tuple[bytes, ...]) -> None:
        """Hand ``chunks`` to the filter and deliver its records."""
        filt = self._filter
        for _ in range(_FILTER_ROUNDS):
            try:
                records = filt.get(chunks)
            except FilterError as exc:
                exc.__traceback__ = None  # no cycle through this frame
                self._filter_failed(exc)
                chunks = ()
                continue
            if not records:
                return
            self._deliver(records)
            # A filter may hold records back behind an error it raises on
            # its next call (Line): ask again until it has nothing.
            chunks = ()

    def _deliver(self, records: list[Any]) -> None:
        """InputEvent(record, wheel_id) for each record, in order."""
        session = self.session
        if session is None:
            return
        deliver = self.kernel.deliver  # emit(), minus its checks per record
        wheel_id = self._id
        done = 0
        try:
            for record in records:
                deliver(session, self._input_event, (record, wheel_id))
                done += 1
        except BaseException:
            # A handler died (POE's DIE follows): the records it did not see
            # come in the next dispatch pass, ahead of anything newer.
            self._held = records[done + 1 :] + self._held
            if self._held:
                self.defer(TailReader._deliver_held, 0.0)
            raise

    def _deliver_held(self) -> None:
        """Deliver the records a dying handler left."""
        held, self._held = self._held, []
        if held:
            self._deliver(held)

    def _filter_failed(self, exc: FilterError) -> None:
        """ErrorEvent for a record the filter refused; the reading goes on."""
        if isinstance(exc, RecordTooLong):
            self.emit(self._error_event, "read", errno.EMSGSIZE, "record too long", self._id)
        else:
            self.emit(self._error_event, "read", exc.errno, str(exc), self._id)
