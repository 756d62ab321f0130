"""Run: a program or a callable in a child process, its stdio as events
(POE::Wheel::Run).

Discussion
----------
POE-SEMANTICS 9 and POE 1.370's Run.pm are the spec; ``_spawn`` starts the
child (exec without forking the parent, see there), ``_conduit`` makes the
pipes, socket pair or pty; ``_run_output`` reads the child's stdout and
stderr.  This module is the wheel: its constructor, stdin and methods.

Output: each of the child's stdout and stderr that has an event is read
until end of file -- one driver read per readiness, as POE, and up to three
more at once while each read fills the driver's block (a fast child, fewer
selector round trips) -- each record delivered synchronously as
``StdoutEvent(record, wheel_id)`` / ``StderrEvent``.  At end
of file the stream gets ``ErrorEvent('read', 0, '', wheel_id, 'STDOUT')``
(or ``'STDERR'``), and when every stream the wheel reads has ended,
``CloseEvent(wheel_id)`` -- once.  CHLD may come before or after it: the
exit status comes only through ``sig_child``, and the session should drop
the wheel on CloseEvent (its stdin watch keeps the session alive).

Input: ``put()`` serializes records with the stdin filter and, like
ReadWrite, writes at once when nothing is queued (POE waits for the next
select pass); what the pipe does not take is queued and written when it is
writable.  ``StdinEvent(wheel_id)`` -- POE's "everything put() was flushed"
-- never fires inside ``put()``: after an immediate write it is queued to the
next dispatch pass, otherwise the write handler sends it.

Where kernelish does better than POE 1.370, on purpose:

* The stdin queue is bounded (``StdinMaxBuffer``, 64 MiB by default): a
  ``put()`` that would pass it queues nothing and reports
  ``ErrorEvent('write', ENOBUFS, ..., 'STDIN')`` -- a child that never reads
  can not make the daemon buffer without end.  After a write error
  (``EPIPE``: the child closed its stdin or died) ``put()`` discards, since
  the error was reported and there is nowhere to write.
* ``shutdown_stdin()`` with records still queued sends them first, then
  closes; POE drops them.
* The end of a pty (Linux reads ``EIO`` on the master once the child side
  is closed) is reported as end of file, ``('read', 0, '')``; POE passes the
  EIO on.
* A filter error on an output stream (a record over the filter's limit, a
  malformed frame) is reported as ``ErrorEvent('read', errnum, text, id,
  handle)`` and ends that stream.
* ``set_stdout_filter``/``set_stderr_filter`` take effect for the reads that
  follow (POE 1.370's readers keep the filter they started with), and
  ``event()`` keeps CloseEvent's count of streams right.
* ``kill()`` signals through a pidfd where the system has them, so a kill
  after the child was reaped never reaches a process that reused its pid.
"""

from __future__ import annotations

import errno
import os
import signal as _signal
from typing import Any, TypeVar

from .._params import ParameterError
from ..drivers import Driver, SysRW
from ..filters import Filter, Line
from ._base import MODE_WRITE
from ._conduit import End, make_plumbing
from ._run_output import OutputWheel, _Output
from ._run_params import parse_run_params
from ._spawn import Identity, pidfd_of, start_child

__all__ = ["Run"]

T = TypeVar("T")

# stdin states
_OPEN = 0  # put() queues and writes
_DRAINING = 1  # shutdown_stdin() waits for the queue to empty
_FAILED = 2  # a write failed: put() discards
_SHUT = 3  # shut down (or never had one): put() raises


class Run(OutputWheel):
    """Run a program or a callable in a child process and talk to it over
    its stdin, stdout and stderr (port of POE::Wheel::Run).

    ``Run(Program=['/bin/ls', '-1', '/'], StdoutEvent='got_line',
    CloseEvent='got_close')`` execs a program; a string Program goes to
    ``/bin/sh -c`` with ``ProgramArgs`` appended; a callable runs in a forked
    child with ``ProgramArgs`` as its arguments.  Records pass through
    ``StdioFilter`` (or ``StdinFilter``/``StdoutFilter``), ``StderrFilter``
    (each a ``Line(Literal='\\n')`` by default, as in POE) and the drivers.
    Events and their ARGs as POE's: ``StdoutEvent``/``StderrEvent`` (record,
    wheel id), ``StdinEvent`` (wheel id), ``CloseEvent`` (wheel id),
    ``ErrorEvent`` (operation, errnum, errstr, wheel id, 'STDIN'|'STDOUT'|
    'STDERR').  The exit status comes through ``kernel.sig_child(wheel.PID,
    event)``.  The documentation's Run page lists every parameter.
    """

    __slots__ = (
        "_conduit",
        "_flush_queued",
        "_max_buffer",
        "_pid",
        "_pidfd",
        "_stdin",
        "_stdin_block",
        "_stdin_driver",
        "_stdin_event",
        "_stdin_fd",
        "_stdin_filter",
        "_stdin_octets",
        "_stdin_shared",
        "_stdin_state",
    )

    def __init__(self, **params: Any) -> None:
        p = parse_run_params(params)
        identity = Identity.of(p.user, p.group)
        super().__init__()
        # Set before anything can fail: __del__ reads them.
        self._stdin: End | None = None
        self._pidfd: End | None = None
        plumbing = make_plumbing(p)
        try:
            pid = start_child(p, plumbing, identity)
        except BaseException:
            plumbing.close_all()
            raise
        plumbing.close_child_side()
        self._pid = pid
        self._pidfd = pidfd_of(pid)
        if self._pidfd is not None:
            self.hold(self._pidfd)
        for end in plumbing.parent_ends():
            self.hold(end)
        self._conduit = p.conduit
        self._pty = plumbing.pty
        self._error_event = p.error_event
        self._close_event = p.close_event
        self._closed = False
        self._replay = None

        stdio_filter = p.stdio_filter if p.stdio_filter is not None else p.filter
        if stdio_filter is None:
            # POE: one Line(Literal => "\n") for stdin and stdout.
            stdio_filter = Line(Literal="\n")
        stdio_driver = p.stdio_driver if p.stdio_driver is not None else SysRW()

        # stdin
        self._stdin = plumbing.stdin
        self._stdin_shared = plumbing.stdin is not None and plumbing.stdin is plumbing.stdout
        self._stdin_fd = plumbing.stdin.fd if plumbing.stdin is not None else -1
        self._stdin_filter: Filter[Any] = _given(p.stdin_filter, stdio_filter)
        self._stdin_driver: Driver = _given(p.stdin_driver, stdio_driver)
        self._stdin_block = type(self._stdin_driver) is SysRW
        self._stdin_event = p.stdin_event
        self._stdin_octets = 0
        self._stdin_state = _OPEN if plumbing.stdin is not None else _SHUT
        self._max_buffer = p.stdin_max_buffer
        self._flush_queued = False
        if plumbing.stdin is not None:
            self.watch(plumbing.stdin, MODE_WRITE, Run._on_stdin, paused=True)

        # stdout and stderr
        self._stdout = _Output(
            "STDOUT",
            plumbing.stdout,
            _given(p.stdout_filter, stdio_filter),
            _given(p.stdout_driver, stdio_driver),
            p.stdout_event,
        )
        self._stderr = _Output(
            "STDERR",
            plumbing.stderr,
            p.stderr_filter if p.stderr_filter is not None else Line(Literal="\n"),
            p.stderr_driver if p.stderr_driver is not None else SysRW(),
            p.stderr_event,
        )
        self._start_reading(self._stdout)
        self._start_reading(self._stderr)

    # -- the child ------------------------------------------------------------

    @property
    def PID(self) -> int:
        """The child's process ID (``$wheel->PID``), for ``sig_child``."""
        return self._pid

    def kill(self, sig: int | str | _signal.Signals = "TERM") -> int:
        """Send ``sig`` to the child (``$wheel->kill``): TERM by default; a
        name (``'KILL'``, ``'SIGKILL'``) or a number.  Returns 1 if it was
        sent, 0 if not (the child is gone, or not ours to signal)."""
        num = _signal_number(sig)
        pidfd = self._pidfd
        try:
            if pidfd is not None and pidfd.fd >= 0:
                _signal.pidfd_send_signal(pidfd.fd, num)
            else:
                os.kill(self._pid, num)
        except (ProcessLookupError, PermissionError):
            return 0
        return 1

    # -- input ----------------------------------------------------------------

    def put(self, *records: Any) -> int:
        """Serialize ``records`` with the stdin filter and send them to the
        child (``$wheel->put``).  Returns 0; 1 when the records were refused
        because the queue would pass ``StdinMaxBuffer`` (an ErrorEvent
        ``('write', ENOBUFS, ...)`` says so).  Raises :class:`BrokenPipeError`
        when the wheel has no stdin (NoStdin, RedirectStdin, after
        ``shutdown_stdin``), as POE croaks."""
        state = self._stdin_state
        if state:
            if state == _FAILED:
                return 0
            raise BrokenPipeError(
                errno.EPIPE,
                "Run.put: the wheel has no open STDIN (NoStdin, RedirectStdin or shutdown_stdin)",
            )
        chunks = self._stdin_filter.put(records)
        octets = self._stdin_octets
        size = sum(map(len, chunks))
        if octets + size > self._max_buffer:
            self.emit(
                self._error_event,
                "write",
                errno.ENOBUFS,
                os.strerror(errno.ENOBUFS),
                self._id,
                "STDIN",
            )
            return 1
        if octets or not self._stdin_block:
            self._stdin_octets = self._stdin_driver.put(chunks)
            if self._stdin_octets:
                self._kernel.select_resume_write(self._stdin)
            return 0
        # An empty queue and a plain SysRW: write now, queue the rest.
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if not data:
            return 0
        try:
            written = os.write(self._stdin_fd, data)
        except OSError:
            written = 0  # EAGAIN, or an error the write handler reports
        if written < len(data):
            self._stdin_octets = self._stdin_driver.put((data[written:],))
            self._kernel.select_resume_write(self._stdin)
        elif self._stdin_event is not None and not self._flush_queued:
            self._flush_queued = True
            self.defer(Run._queued_flush)
        return 0

    def _queued_flush(self) -> None:
        self._flush_queued = False
        if not self._stdin_octets and self._stdin_state == _OPEN:
            self.emit(self._stdin_event, self._id)

    def _on_stdin(self) -> None:
        """The write handler: flush the queue; StdinEvent once it is empty."""
        try:
            left = self._stdin_octets = self._stdin_driver.flush(self._stdin_fd)
        except OSError as exc:
            self._stdin_octets = self._stdin_driver.get_out_octets_buffered()
            self._stdin_state = _FAILED
            if self._stdin is not None:
                self.unwatch(self._stdin, MODE_WRITE)
            self.emit(
                self._error_event, "write", exc.errno or 0, exc.strerror or "", self._id, "STDIN"
            )
            return
        if left:
            return
        self._kernel.select_pause_write(self._stdin)
        if self._stdin_state == _DRAINING:
            self._shut_stdin()
        self.emit(self._stdin_event, self._id)

    def shutdown_stdin(self) -> None:
        """Close the child's stdin so it reads end of file
        (``shutdown_stdin``); records still queued are written first.  On a
        socket pair it is a half-close; a pty has no half-close, so the
        wheel only stops writing."""
        if self._stdin_state == _OPEN and self._stdin_octets:
            self._stdin_state = _DRAINING
        elif self._stdin_state != _SHUT:
            self._shut_stdin()

    def _shut_stdin(self) -> None:
        stdin = self._stdin
        self._stdin_state = _SHUT
        if stdin is None:
            return
        self.unwatch(stdin, MODE_WRITE)
        if self._stdin_shared:
            stdin.shutdown_write()
        else:
            self.disown(stdin)
            stdin.close()
        self._stdin = None

    def get_driver_out_octets(self) -> int:
        """Octets queued for the child's stdin (``get_driver_out_octets``)."""
        return self._stdin_octets

    def get_driver_out_messages(self) -> int:
        """Chunks queued for the child's stdin (``get_driver_out_messages``)."""
        return self._stdin_driver.get_out_messages_buffered()

    # -- pausing --------------------------------------------------------------

    def pause_stdout(self) -> None:
        """Stop reading the child's stdout for now (``pause_stdout``); the
        child blocks once the pipe is full."""
        self._pause(self._stdout, True)

    def resume_stdout(self) -> None:
        """Read the child's stdout again (``resume_stdout``)."""
        self._pause(self._stdout, False)

    def pause_stderr(self) -> None:
        """Stop reading the child's stderr for now (``pause_stderr``)."""
        self._pause(self._stderr, True)

    def resume_stderr(self) -> None:
        """Read the child's stderr again (``resume_stderr``)."""
        self._pause(self._stderr, False)

    # -- filters --------------------------------------------------------------

    def get_stdin_filter(self) -> Filter[Any]:
        """The filter that serializes ``put()`` records (``get_stdin_filter``)."""
        return self._stdin_filter

    def get_stdout_filter(self) -> Filter[Any]:
        """The filter that parses the child's stdout (``get_stdout_filter``)."""
        return self._stdout.filter

    def get_stderr_filter(self) -> Filter[Any]:
        """The filter that parses the child's stderr (``get_stderr_filter``)."""
        return self._stderr.filter

    def set_stdio_filter(self, new_filter: Filter[Any]) -> None:
        """Use ``new_filter`` for stdin and stdout (``set_stdio_filter``)."""
        self.set_stdout_filter(new_filter)
        self.set_stdin_filter(new_filter)

    def set_stdin_filter(self, new_filter: Filter[Any]) -> None:
        """Serialize later ``put()`` records with ``new_filter``; what is
        queued stays as it was (``set_stdin_filter``)."""
        self._stdin_filter = new_filter

    def set_stdout_filter(self, new_filter: Filter[Any]) -> None:
        """Parse the child's stdout with ``new_filter`` from now on; what the
        old one buffered is parsed by it and delivered at once
        (``set_stdout_filter``)."""
        self._switch(self._stdout, new_filter)

    def set_stderr_filter(self, new_filter: Filter[Any]) -> None:
        """As :meth:`set_stdout_filter`, for stderr (``set_stderr_filter``)."""
        self._switch(self._stderr, new_filter)

    # -- events ---------------------------------------------------------------

    def event(self, **events: str | None) -> None:
        """Rename events (``$wheel->event``): StdinEvent, StdoutEvent,
        StderrEvent, ErrorEvent, CloseEvent (or snake_case).  None for
        StdoutEvent/StderrEvent stops reading that stream (it still counts
        as open for CloseEvent); a name again resumes."""
        for name, value in events.items():
            key = _EVENT_NAMES.get(name)
            if key is None:
                raise ParameterError(
                    f"Run.event: unknown event parameter {name!r}", owner="Run", params=(name,)
                )
            if key in ("stdout", "stderr"):
                out = self._stdout if key == "stdout" else self._stderr
                if out.handle is None:
                    why = "a pty has no stderr" if self._conduit == "pty" else "made without it"
                    raise ParameterError(
                        f"Run.event: {name}: the wheel has no {key} to read ({why})",
                        owner="Run",
                        params=(name,),
                    )
                out.event = value
                if value is None:
                    self._stop_reading(out)
                else:
                    self._start_reading(out)
            else:
                setattr(self, key, value)

    # -- lifetime -------------------------------------------------------------

    def _forget_handles(self) -> None:
        self._stdin = None
        self._pidfd = None
        for name in ("_stdout", "_stderr"):
            out = getattr(self, name, None)  # unset if __init__ failed early
            if out is not None:
                out.handle = None


def _given(value: T | None, default: T) -> T:
    """``value`` unless it is None (a filter may well be false: ``len()``)."""
    return default if value is None else value


def _signal_number(sig: int | str | _signal.Signals) -> int:
    if isinstance(sig, int):
        return int(sig)
    name = sig.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(_signal.Signals[name])
    except KeyError:
        raise ValueError(f"Run.kill: unknown signal {sig!r}") from None


_EVENT_NAMES = {
    "StdinEvent": "_stdin_event",
    "stdin_event": "_stdin_event",
    "StdoutEvent": "stdout",
    "stdout_event": "stdout",
    "StderrEvent": "stderr",
    "stderr_event": "stderr",
    "ErrorEvent": "_error_event",
    "error_event": "_error_event",
    "CloseEvent": "_close_event",
    "close_event": "_close_event",
}
