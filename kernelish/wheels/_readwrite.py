"""ReadWrite: buffered, filtered, non-blocking I/O on a handle
(POE::Wheel::ReadWrite).

Discussion
----------
POE-SEMANTICS 7.2 is the spec.  Input: on readability the driver reads one
chunk, the filter cuts it into records, and ``InputEvent(record, wheel_id)``
is called for each, synchronously, in order (``get_one_start``/``get_one``,
so a handler may switch filters mid-chunk and the rest is parsed by the new
one, as in POE).  End of file is ``ErrorEvent('read', 0, '', wheel_id)``; a
read error the same with its errno; either removes the read watch, while the
(paused) write watch keeps the session alive until the wheel is dropped.

Output: ``put()`` serializes records into the driver's queue.  Where POE only
resumes the write watch and writes when the selector next reports the handle
writable, kernelish **writes at once when the queue was empty** -- the common
case of a request/response protocol then costs no selector round trip and no
epoll_ctl calls, which is what makes a ReadWrite echo server as fast as
asyncio's.  What stays POE's:

* FlushedEvent never fires inside ``put()``: if the immediate write emptied
  the queue and a FlushedEvent is set, it is queued to the next dispatch pass
  (one per burst of puts; none if a later put left data for the write
  handler, which then sends it), so the idiom "put a goodbye, set a flag,
  drop the wheel on FlushedEvent" still works -- without arming the write
  watch, which would cost two ``epoll_ctl`` calls per put.
* Write errors in that immediate write are not reported from ``put()``; the
  write watch is resumed and the write handler reports them as
  ``ErrorEvent('write', errno, errstr, id)``.
* Anything not written is written when the handle is writable.

Watermarks: ``put()`` returns 1 when HighMark is set and the buffered octets
reach it, else 0 (POE).  Entering high water calls ``HighEvent(id)`` -- from
``put()`` or from the write handler, whichever sees it first -- and draining
to LowMark or below calls ``LowEvent(id)``.  (POE 1.370's put() sets the
high-water flag without calling HighEvent, so HighEvent practically never
fires there; the documented edge-triggered behaviour is what we implement.)

Idle connections: ``InputTimeout=seconds`` (Apache's ``Timeout``,
gunicorn's ``--timeout``) ends input that brought no complete record for that
long -- a silent client, or one that sent half a line -- with
``ErrorEvent('read', ETIMEDOUT, 'Connection timed out', id)``, and stops
reading (as any read error does; the handler usually drops the wheel).  It
counts while the wheel reads (InputEvent set), paused input included.  The
cost is one timer per wheel, armed once: each read that yields records notes
the time (``time.monotonic()``, the kernel's default clock), and the timer,
when it fires, re-arms itself for what is left if a record came meanwhile.

Backpressure: with ``Backpressure=True`` (it needs HighMark and LowMark) a
peer that sends requests but does not read the replies cannot make the
process buffer them without bound: when the output queue reaches HighMark,
the wheel stops delivering records -- those already read and parsed wait --
and stops reading; when the queue drains to LowMark, the waiting records are
delivered and reading resumes.  Output then stays below HighMark plus the
largest single ``put()``, and input below one driver read (BlockSize) of
parsed records.  ``pause_input``/``resume_input`` of the program and this
pause are independent: input flows only when neither holds it.

Input limits: when the filter refuses a record as too long
(:class:`~kernelish.filters.RecordTooLong`, POE's ``die`` in Filter::Line),
the wheel reports ``ErrorEvent('read', EMSGSIZE, 'record too long', id)`` and
stops reading: a peer can never make the process buffer more than the
filter's MaxLength.  Other filter errors are reported the same way with the
error's errno.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._params import LazyParams, ParameterError, exact, instance_of, positive_int
from .._watchers import fileno_of
from ..drivers import Driver, SysRW
from ..filters import Filter, FilterError, Line, RecordTooLong
from ._base import MODE_READ, MODE_WRITE, Wheel

if TYPE_CHECKING:
    from ._readwrite_params import ReadWriteParams

__all__ = ["ReadWrite"]

#: The clock of InputTimeout, bound once: it is read on every read.
_monotonic = time.monotonic


def _timeout(value: Any) -> bool:
    return value is None or (value.__class__ in (int, float) and 0 < value < float("inf"))


def _consistent(p: Any) -> bool:
    """ReadWriteParams' rules for the common shape; False lets the model word the error."""
    high, low = p.high_mark, p.low_mark
    if high is None:
        return low is None and not p.backpressure
    return low is not None and bool(low < high)


#: ReadWrite's parameters (the model: :mod:`._readwrite_params`).  A wheel is
#: built per connection: pydantic's validation cost it about 6 us, and a
#: freshly forked child about 15 copy-on-write page faults and 0.2 ms more
#: (the validators' objects are the parent's).  The common shape -- a socket
#: as Handle, a Filter or none, event names, InputTimeout, the marks and
#: Backpressure -- is checked without it.
_PARAMS = LazyParams(
    "ReadWrite",
    "kernelish.wheels._readwrite_params:ReadWriteParams",
    {
        "handle": None,
        "input_handle": None,
        "output_handle": None,
        "driver": None,
        "filter": None,
        "input_filter": None,
        "output_filter": None,
        "input_event": None,
        "error_event": None,
        "flushed_event": None,
        "high_mark": None,
        "low_mark": None,
        "high_event": None,
        "low_event": None,
        "auto_flush": False,
        "input_timeout": None,
        "backpressure": False,
    },
    {
        "handle": instance_of(socket.socket),
        "filter": instance_of(Filter, none=True),
        "input_event": exact(str, None),
        "error_event": exact(str, None),
        "flushed_event": exact(str, None),
        "input_timeout": _timeout,
        "high_mark": positive_int,
        "low_mark": positive_int,
        "backpressure": exact(bool),
    },
    required=("handle",),
    consistent=_consistent,
)


class ReadWrite(Wheel):
    """Buffered non-blocking I/O with a filter and a driver (port of
    POE::Wheel::ReadWrite).

    ``ReadWrite(Handle=sock, InputEvent='got_line', ErrorEvent='got_error')``
    reads lines (default filter :class:`~kernelish.filters.Line`, default
    driver :class:`~kernelish.drivers.SysRW`) and ``put()`` writes them.

    Beyond POE's parameters, for servers that face the network (see the
    module notes): ``InputTimeout=seconds`` ends input that brought no
    complete record for that long (``ErrorEvent('read', ETIMEDOUT, ...)``);
    ``Backpressure=True``, with ``HighMark``/``LowMark``, stops reading while
    the output queue is at HighMark or above; :meth:`is_idle` says when a
    connection may be closed without cutting a request.
    """

    __slots__ = (
        "_auto_flush",
        "_backpressure",
        "_block_size",
        "_driver",
        "_error_event",
        "_flush_queued",
        "_flushed_callback",
        "_flushed_event",
        "_held",
        "_held_back",
        "_high",
        "_high_event",
        "_high_mark",
        "_idle_timer",
        "_in_fd",
        "_in_filter",
        "_in_handle",
        "_input_done",
        "_input_event",
        "_input_timeout",
        "_last_input",
        "_low_event",
        "_low_mark",
        "_out_fd",
        "_out_filter",
        "_out_handle",
        "_out_octets",
        "_output_done",
        "_reading",
        "_replay",
        "_user_paused",
        "_write_watch",
    )

    def __init__(self, **params: Any) -> None:
        p: ReadWriteParams = _PARAMS.parse(params)
        super().__init__()
        if p.handle is not None:
            in_handle = out_handle = p.handle
        else:
            in_handle, out_handle = p.input_handle, p.output_handle
        in_filter: Filter[Any]
        out_filter: Filter[Any]
        if p.filter is not None:
            in_filter = out_filter = p.filter
        else:
            # POE: one Line filter shared by both directions unless given.
            default: Filter[Any] = Line()
            in_filter = p.input_filter if p.input_filter is not None else default
            out_filter = p.output_filter if p.output_filter is not None else default
        self._in_handle: Any = in_handle
        self._out_handle: Any = out_handle
        self.hold(in_handle)
        self.hold(out_handle)
        self._in_fd = fileno_of(in_handle)
        self._out_fd = fileno_of(out_handle)
        self._in_filter: Filter[Any] = in_filter
        self._out_filter: Filter[Any] = out_filter
        self._driver: Driver = p.driver if p.driver is not None else SysRW()
        # Non-zero for a plain SysRW, whose read and write are inlined.
        self._block_size = self._driver.block_size if type(self._driver) is SysRW else 0
        self._replay: _Replay | None = None
        self._input_event = p.input_event
        self._error_event = p.error_event
        self._flushed_event = p.flushed_event
        self._high_mark = p.high_mark
        self._low_mark = p.low_mark
        self._high_event = p.high_event
        self._low_event = p.low_event
        self._auto_flush = p.auto_flush
        self._high = False
        self._out_octets = 0
        self._reading = False
        self._input_done = False
        self._output_done = False
        self._backpressure = p.backpressure
        self._held_back = False  # output above HighMark: input waits
        self._held: _Held | None = None
        self._user_paused = False
        self._input_timeout = p.input_timeout
        self._last_input = 0.0
        self._idle_timer: int | None = None
        self._write_watch = False
        if self._input_event is not None:
            self._start_reading()
        if not self._reading or self._out_fd != self._in_fd:
            self._hold_write_watch()
        self._flush_queued = False
        self._flushed_callback: Callable[[], None] | None = None

    # -- input ------------------------------------------------------------------

    def _start_reading(self) -> None:
        self._reading = True
        paused = self._held_back or self._user_paused or self._held is not None
        self.watch(self._in_handle, MODE_READ, ReadWrite._on_read, paused=paused)
        if self._input_timeout is not None:
            # The idle clock starts (again) with reading.
            self._last_input = time.monotonic()
            if self._idle_timer is None:
                self._idle_timer = self.defer(ReadWrite._check_idle, self._input_timeout)

    def _stop_reading(self) -> None:
        self._reading = False
        self._hold_write_watch()  # first: the session keeps its hold on the handle
        if self._in_handle is not None:
            self.unwatch(self._in_handle, MODE_READ)

    def _on_read(self) -> None:
        """The read handler: one driver read, every record to InputEvent."""
        if self._block_size:
            # SysRW's get(), inlined: the hot path of every connection.
            try:
                data = os.read(self._in_fd, self._block_size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._input_failed(exc.errno or 0, exc.strerror or str(exc))
                return
            if not data:
                self._input_failed(0, "")
                return
            chunks: list[bytes] = [data]
        else:
            try:
                got = self._driver.get(self._in_fd)
            except OSError as exc:
                self._input_failed(exc.errno or 0, exc.strerror or str(exc))
                return
            if got is None:
                self._input_failed(0, "")
                return
            if not got:
                return
            chunks = got
        filt = self._in_filter
        before = filt.get_pending()
        try:
            records = filt.get(chunks)
        except FilterError as exc:
            self._filter_failed(exc)
            return
        if records:
            if self._input_timeout is not None:
                self._last_input = _monotonic()
            self._deliver(filt, records, chunks, before)
            if filt.deferred_error is not None and self._held is None and self._in_filter is filt:
                # Line defers an overlong line found behind complete ones.
                self._parse_rest(filt)

    def _parse_deferred(self, filt: Filter[Any]) -> None:
        if getattr(filt, "_deferred", None) is not None and self._in_filter is filt:
            # Line defers an overlong line found behind complete ones.
            self._parse_rest(filt)

    def _parse_rest(self, filt: Filter[Any], chunks: Any = ()) -> None:
        """Deliver what ``filt`` still holds (after a filter switch, or a
        deferred filter error)."""
        try:
            records = filt.get(chunks)
        except FilterError as exc:
            self._filter_failed(exc)
            return
        if records:
            self._deliver(filt, records, [], None)

    def _deliver(
        self,
        filt: Filter[Any],
        records: list[Any],
        chunks: list[bytes],
        before: list[bytes] | None,
        start: int = 0,
        replay: _Replay | None = None,
    ) -> None:
        """Call InputEvent for each record, in order, from ``start``.

        The filter parsed the whole chunk at once (``get``, several times
        faster than POE's ``get_one`` loop).  If a handler switches the input
        filter with records still undelivered, :meth:`set_input_filter`
        replays the chunk to find the octets behind the current record, so
        the new filter gets exactly what POE's ``get_one`` loop would give it.
        With Backpressure, records left when the output reaches HighMark
        wait in :attr:`_held` until it drains.
        """
        session = self.session
        if session is None or not session.alive:
            return
        deliver = self._kernel.deliver
        wheel_id = self._id
        if replay is None and len(records) > 1:
            replay = _Replay(filt, before, chunks, len(records))
        self._replay = replay
        try:
            for index in range(start, len(records)):
                event = self._input_event
                if event is None or self._in_filter is not filt:
                    return
                if self._held_back:
                    if replay is None:
                        replay = self._replay = _Replay(filt, before, chunks, len(records))
                        replay.index = index - 1
                    self._held = _Held(filt, records, index, replay)
                    return
                if replay is not None:
                    replay.index = index
                deliver(session, event, (records[index], wheel_id))
        finally:
            if self._replay is replay and self._held is None:
                self._replay = None

    def _filter_failed(self, exc: FilterError) -> None:
        # The traceback holds this wheel's frames; a filter that re-raised
        # from an ``except ... as`` clause made it a cycle (exc -> traceback
        # -> frame -> exc) that would keep a dropped wheel alive until the
        # cycle collector runs.  Cut it.
        exc.__traceback__ = None
        if isinstance(exc, RecordTooLong):
            self._input_failed(errno.EMSGSIZE, "record too long")
        else:
            self._input_failed(exc.errno, str(exc))

    def _input_failed(self, errnum: int, errstr: str) -> None:
        self._input_done = True
        self._held = None
        self._stop_reading()
        if self._idle_timer is not None:
            self.cancel(self._idle_timer)
            self._idle_timer = None
        self.emit(self._error_event, "read", errnum, errstr, self._id)

    def _check_idle(self) -> None:
        """InputTimeout's one timer: time out, or wait for what is left."""
        self._idle_timer = None
        timeout = self._input_timeout
        if timeout is None or self._input_done or not self._reading:
            return  # not reading (InputEvent=None): nothing to wait for
        left = timeout - (time.monotonic() - self._last_input)
        if left > 0.001:
            self._idle_timer = self.defer(ReadWrite._check_idle, left)
            return
        self._input_failed(errno.ETIMEDOUT, "Connection timed out")

    # -- backpressure -------------------------------------------------------------

    def _hold_input(self) -> None:
        """Output reached HighMark: stop reading and delivering."""
        self._held_back = True
        if self._reading and self._in_handle is not None:
            self._kernel.select_pause_read(self._in_handle)

    def _release_input(self) -> None:
        """Output drained to LowMark: the waiting records go first (in the
        next dispatch pass), then reading resumes."""
        self._held_back = False
        if self._held is not None:
            self.defer(ReadWrite._deliver_held)
        else:
            self._resume_reading()

    def _deliver_held(self) -> None:
        held = self._held
        if held is None or self._held_back:
            return
        self._held = None
        self._deliver(held.filter, held.records, [], None, held.index, held.replay)
        if self._held is None:
            self._parse_deferred(held.filter)
            self._resume_reading()

    def _resume_reading(self) -> None:
        if (
            self._reading
            and not self._held_back
            and not self._user_paused
            and self._held is None
            and self._in_handle is not None
        ):
            self._kernel.select_resume_read(self._in_handle)

    # -- output -----------------------------------------------------------------

    def put(self, *records: Any) -> int:
        """Serialize ``records`` and queue them for writing (``put``).

        Writes at once when the queue was empty (see the module notes).
        Returns 1 if HighMark is set and the queued octets reach it, else 0.
        """
        chunks = self._out_filter.put(records)
        octets = self._out_octets
        if octets or self._output_done:
            octets = self._out_octets = self._driver.put(chunks)
        elif self._block_size and not self._auto_flush:
            # SysRW with an empty queue: write directly, queue the rest.
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if data:
                try:
                    written = os.write(self._out_fd, data)
                except OSError:
                    # EAGAIN, or an error the write handler will report.
                    written = 0
                if written < len(data):
                    octets = self._out_octets = self._driver.put((data[written:],))
                    self._resume_write_watch()
                elif self._flushed_event is not None and not self._flush_queued:
                    # FlushedEvent comes later, never from put(): queued to the
                    # next dispatch pass (cheaper than arming the write watch).
                    self._queue_flushed()
        else:
            octets = self._out_octets = self._driver.put(chunks)
            if octets:
                if self._auto_flush:
                    self.flush()
                    octets = self._out_octets
                else:
                    self._resume_write_watch()
        high = self._high_mark
        if high is not None and octets >= high:
            if not self._high:
                self._high = True
                if self._backpressure:
                    self._hold_input()
                self.emit(self._high_event, self._id)
            return 1
        return 0

    def _queue_flushed(self) -> None:
        session = self._session_ref()
        if session is None:
            return
        self._flush_queued = True
        callback = self._flushed_callback
        if callback is None:
            # Made once per wheel, not per put().
            ref = weakref.ref(self)

            def flushed() -> None:
                wheel = ref()
                if wheel is None:
                    return
                wheel._flush_queued = False
                # Data queued since (a partial write) gets its FlushedEvent
                # from the write handler instead.
                if not wheel._out_octets and not wheel._output_done:
                    wheel.emit(wheel._flushed_event, wheel._id)

            flushed.__name__ = f"{self!r} -> flushed"
            callback = self._flushed_callback = flushed
        self._kernel.defer(session, callback)

    def _hold_write_watch(self) -> None:
        """The write watch, paused: POE's is there from the start and holds
        the session while the wheel lives.  A wheel that reads the same
        handle makes it only when the read watch goes (end of file, an
        error, ``shutdown_input``) or output must wait: the read watch
        holds the session meanwhile, and most connections never need it
        (a put writes at once), which saves a watch and its release per
        connection."""
        if not self._write_watch and not self._output_done and self._out_handle is not None:
            self._write_watch = True
            self.watch(self._out_handle, MODE_WRITE, ReadWrite._on_write, paused=True)

    def _resume_write_watch(self) -> None:
        """Output waits for the handle: arm the write watch."""
        self._hold_write_watch()
        self._kernel.select_resume_write(self._out_handle)

    def _drop_write_watch(self) -> None:
        self._write_watch = False
        self.unwatch(self._out_handle, MODE_WRITE)

    def _on_write(self) -> None:
        """The write handler: flush, watermarks, FlushedEvent."""
        driver = self._driver
        try:
            left = self._out_octets = driver.flush(self._out_fd)
        except OSError as exc:
            self._out_octets = driver.get_out_octets_buffered()
            self._output_done = True
            self._drop_write_watch()
            self.emit(self._error_event, "write", exc.errno or 0, exc.strerror or "", self._id)
            return
        if self._high:
            if left <= (self._low_mark or 0):
                self._high = False
                if self._held_back:
                    self._release_input()
                self.emit(self._low_event, self._id)
        elif self._high_mark is not None and left >= self._high_mark:
            self._high = True
            if self._backpressure:
                self._hold_input()
            self.emit(self._high_event, self._id)
        if not left:
            if self._write_watch:  # (flush() may run before output ever waited)
                self._kernel.select_pause_write(self._out_handle)
            self.emit(self._flushed_event, self._id)

    def flush(self) -> None:
        """Run the write handler now (``flush``): write what the handle
        takes, with the events that follow."""
        if not self._output_done and self._out_handle is not None:
            self._on_write()

    # -- input and output control ---------------------------------------------

    def pause_input(self) -> int:
        """Stop reading for now; the handle stays watched (``pause_input``)."""
        if self._in_handle is None:
            return 0
        self._user_paused = True
        return self._kernel.select_pause_read(self._in_handle)

    def resume_input(self) -> int:
        """Read again after :meth:`pause_input` (``resume_input``) -- once the
        output has drained, if Backpressure holds input meanwhile."""
        if self._in_handle is None:
            return 0
        self._user_paused = False
        if self._held_back or self._held is not None:
            return 1
        return self._kernel.select_resume_read(self._in_handle)

    def shutdown_input(self) -> None:
        """Shut the socket down for reading and stop reading
        (``shutdown_input``)."""
        self._input_done = True
        self._stop_reading()
        _shutdown(self._in_handle, socket.SHUT_RD)

    def shutdown_output(self) -> None:
        """Half-close: shut the socket down for writing (the peer sees end
        of file) and stop writing; anything still queued is abandoned
        (``shutdown_output``)."""
        self._output_done = True
        if self._out_handle is not None:
            self._drop_write_watch()
        _shutdown(self._out_handle, socket.SHUT_WR)

    # -- filters ------------------------------------------------------------------

    def set_filter(self, new_filter: Filter[Any]) -> None:
        """Use ``new_filter`` for input and output; input already buffered
        is parsed by it and delivered at once (``set_filter``)."""
        self._out_filter = new_filter
        self.set_input_filter(new_filter)

    def set_input_filter(self, new_filter: Filter[Any]) -> None:
        """Change the input filter, handing it the old one's buffered input,
        whose records are delivered at once (``set_input_filter``)."""
        old = self._in_filter
        replay = self._replay
        if replay is not None and replay.filter is old and replay.index + 1 < replay.count:
            pending = replay.rest()
        else:
            pending = old.get_pending()
        self._replay = None
        if self._held is not None:
            # The waiting records are in ``pending`` again, for the new filter.
            self._held = None
            self._resume_reading()
        self._in_filter = new_filter
        if pending:
            self._parse_rest(new_filter, pending)

    def set_output_filter(self, new_filter: Filter[Any]) -> None:
        """Change the output filter (``set_output_filter``)."""
        self._out_filter = new_filter

    def get_input_filter(self) -> Filter[Any]:
        """The input filter (``get_input_filter``)."""
        return self._in_filter

    def get_output_filter(self) -> Filter[Any]:
        """The output filter (``get_output_filter``)."""
        return self._out_filter

    # -- watermarks and statistics --------------------------------------------

    def set_high_mark(self, mark: int) -> None:
        """Change HighMark (``set_high_mark``); it must stay above LowMark."""
        if self._high_mark is None or self._low_mark is None:
            raise ValueError("set_high_mark: the wheel was created without HighMark")
        if mark <= self._low_mark:
            raise ValueError(f"set_high_mark: {mark} is not above LowMark {self._low_mark}")
        self._high_mark = mark

    def set_low_mark(self, mark: int) -> None:
        """Change LowMark (``set_low_mark``); it must stay in 1..HighMark-1."""
        if self._high_mark is None or self._low_mark is None:
            raise ValueError("set_low_mark: the wheel was created without LowMark")
        if not 0 < mark < self._high_mark:
            raise ValueError(f"set_low_mark: {mark} is not in 1..{self._high_mark - 1}")
        self._low_mark = mark

    def is_idle(self) -> bool:
        """Whether nothing is under way on the wheel: no output queued, no
        input read but not delivered (records held back by Backpressure, or
        part of a record in the filter), and nothing unread in the input
        handle.  A server that stops gracefully closes a connection once its
        wheel is idle: every request the peer sent has been answered
        (kernelish; POE has no such call)."""
        if self._out_octets or self._held is not None:
            return False
        if self._in_filter.get_pending():
            return False
        return self._unread() == 0

    def _unread(self) -> int:
        """Octets waiting in the input handle (FIONREAD); 0 if unknown."""
        if self._in_handle is None or self._input_done:
            return 0
        # Imported here: only is_idle() asks, and termios is five more
        # mappings in every process that imports the wheels.
        import fcntl
        import termios

        buf = bytearray(4)
        try:
            fcntl.ioctl(self._in_fd, termios.FIONREAD, buf)
        except OSError:
            return 0
        return int.from_bytes(buf, sys.byteorder, signed=True)

    def get_driver_out_octets(self) -> int:
        """Octets queued for output as of the last put/flush
        (``get_driver_out_octets``)."""
        return self._out_octets

    def get_driver_out_messages(self) -> int:
        """Chunks queued for output (``get_driver_out_messages``)."""
        return self._driver.get_out_messages_buffered()

    def get_input_handle(self) -> Any:
        """The input handle (``get_input_handle``)."""
        return self._in_handle

    def get_output_handle(self) -> Any:
        """The output handle (``get_output_handle``)."""
        return self._out_handle

    def get_driver(self) -> Driver:
        """The driver."""
        return self._driver

    # -- events -------------------------------------------------------------------

    def event(self, **events: str | None) -> None:
        """Rename events (``event``): InputEvent, ErrorEvent, FlushedEvent,
        HighEvent, LowEvent (or snake_case).  InputEvent=None stops reading;
        setting it again resumes (unless input has ended)."""
        for name, value in events.items():
            key = _EVENT_NAMES.get(name)
            if key is None:
                raise ParameterError(
                    f"ReadWrite.event: unknown event parameter {name!r}",
                    owner="ReadWrite",
                    params=(name,),
                )
            if key in ("_high_event", "_low_event") and self._high_mark is None:
                raise ParameterError(
                    f"ReadWrite.event: {name} needs a HighMark set at construction",
                    owner="ReadWrite",
                    params=(name,),
                )
            setattr(self, key, value)
            if key == "_input_event":
                if value is None and self._reading:
                    self._stop_reading()
                elif value is not None and not self._reading and not self._input_done:
                    self._start_reading()

    # -- lifetime -------------------------------------------------------------------

    def _forget_handles(self) -> None:
        self._in_handle = self._out_handle = None


class _Held:
    """Records parsed but not delivered: the output is above HighMark."""

    __slots__ = ("filter", "index", "records", "replay")

    def __init__(
        self, filt: Filter[Any], records: list[Any], index: int, replay: _Replay | None
    ) -> None:
        self.filter = filt
        self.records = records
        self.index = index
        self.replay = replay


class _Replay:
    """A chunk whose records are being delivered (for a filter switch)."""

    __slots__ = ("before", "chunks", "count", "filter", "index")

    def __init__(
        self, filt: Filter[Any], before: list[bytes] | None, chunks: list[bytes], count: int
    ) -> None:
        self.filter = filt
        self.before = before
        self.chunks = chunks
        self.count = count
        self.index = 0

    def rest(self) -> list[bytes] | None:
        """The octets behind record ``index``: a clone of the filter parses
        the chunk again and stops there."""
        clone = self.filter.clone()
        clone.get_one_start([*(self.before or ()), *self.chunks])
        for _ in range(self.index + 1):
            clone.get_one()
        return clone.get_pending()


_EVENT_NAMES = {
    "InputEvent": "_input_event",
    "input_event": "_input_event",
    "ErrorEvent": "_error_event",
    "error_event": "_error_event",
    "FlushedEvent": "_flushed_event",
    "flushed_event": "_flushed_event",
    "HighEvent": "_high_event",
    "high_event": "_high_event",
    "LowEvent": "_low_event",
    "low_event": "_low_event",
}


def _shutdown(handle: Any, how: int) -> None:
    if isinstance(handle, socket.socket):
        try:
            handle.shutdown(how)
        except OSError:
            pass
    elif isinstance(handle, int):
        try:
            sock = socket.socket(fileno=handle)
        except OSError:
            return
        try:
            sock.shutdown(how)
        except OSError:
            pass
        finally:
            sock.detach()
