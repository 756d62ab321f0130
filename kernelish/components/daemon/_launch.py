"""The launching command waits for the detached daemon, and reports its failure.

Discussion
----------
``detach`` forks twice and the command that ran ``spawn()`` used to exit 0 at
once: a daemon that died a moment later (port in use, a pidfile directory it
may not write, an exception in a handler) left an exit status of 0, nothing on
the terminal, the error in a logfile nobody was reading, and perhaps a stale
control socket.  Under systemd ``Type=notify`` the launcher had to wait for
``READY=1`` anyway.  Now every detaching ``spawn()`` does what it did there:

* before detaching, :meth:`LaunchWait.fork` forks once more; the original
  process -- the *launcher*, whose stdout and stderr are still the
  terminal's -- waits on a pipe and never returns;
* the daemon writes a ready mark down the pipe when its pool is up (the
  Daemon's first ``waste_time``, the moment systemd hears ``READY=1``), and
  the launcher exits 0;
* until then, once stderr goes to the logfile, what the daemon writes to
  ``sys.stderr`` (tracebacks, the Daemon's log lines, a handler's
  ``print(..., file=sys.stderr)``) also goes down the pipe: if the pipe
  closes without the mark (the daemon stopped or died before it was ready),
  the launcher prints the last :data:`TAIL` octets of it and a line of its
  own, and exits 1.

The pipe's write end is non-blocking and the daemon never waits for the
launcher: a launcher that went away (killed, or a full pipe) only loses the
copy.  Forked children drop their copy of the pipe at once (``release`` with
``ready=False``), so they neither report for the daemon nor keep the
launcher waiting.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, TextIO

__all__ = ["TAIL", "LaunchWait"]

#: The most octets of the daemon's stderr a failed launch prints.
TAIL = 16384

_READY = b"\0ready\n"


class _StderrCopy:
    """``sys.stderr`` while launching: writes go to the real stream (the
    logfile) and, from the daemon's own process, down the launch pipe."""

    def __init__(self, stream: TextIO, fd: int) -> None:
        self.stream = stream
        self.fd = fd
        self.owner = os.getpid()

    def write(self, text: str) -> int:
        written = self.stream.write(text)
        if self.fd >= 0 and os.getpid() == self.owner:
            try:
                os.write(self.fd, text.encode("utf-8", "replace"))
            except BlockingIOError:
                pass  # the launcher is slow: it misses this copy, the log has it
            except OSError:
                self.fd = -1  # the launcher is gone
        return written

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class LaunchWait:
    """The launching process waits until the detached daemon is up
    (:meth:`fork`, :meth:`release`); see the module notes."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()  # not inheritable across exec
        self._copy: _StderrCopy | None = None

    def fork(self) -> None:
        """Fork; the launcher waits here and never returns, the child returns."""
        pid = os.fork()
        if pid == 0:
            os.close(self._r)
            os.set_blocking(self._w, False)
            return
        os.close(self._w)
        code = 1
        try:
            code = _wait(self._r, pid)
        finally:
            os._exit(code)

    def copy_stderr(self) -> None:
        """From now until :meth:`release`, copy ``sys.stderr`` down the pipe
        (called once stderr is the logfile)."""
        if self._w >= 0 and self._copy is None:
            self._copy = _StderrCopy(sys.stderr, self._w)
            sys.stderr = self._copy

    def detached(self) -> None:
        """This process is the daemon now (after ``detach``'s forks): the
        copy is its own, not that of the processes that went away."""
        if self._copy is not None:
            self._copy.owner = os.getpid()

    def release(self, ready: bool = True) -> None:
        """Tell the launcher (ready or not) and let it go; also in children,
        with ``ready=False``, to drop their copy of the pipe."""
        copy, self._copy = self._copy, None
        if copy is not None:
            copy.fd = -1
            if sys.stderr is copy:
                sys.stderr = copy.stream
        w, self._w = self._w, -1
        if w < 0:
            return
        if ready:
            os.set_blocking(w, True)  # one short write; the launcher is reading
            with contextlib.suppress(OSError):
                os.write(w, _READY)
        with contextlib.suppress(OSError):
            os.close(w)


def _wait(r: int, pid: int) -> int:
    """The launcher's side: 0 once the ready mark arrives; 1, with the
    daemon's last words on stderr, if the pipe closes without it."""
    text = b""
    while chunk := os.read(r, 65536):
        text += chunk
        if _READY in text:
            _reap(pid)
            return 0
        text = text[-(TAIL + len(_READY)) :]
    _reap(pid)
    said = text.decode("utf-8", "replace")
    if said and not said.endswith("\n"):
        said += "\n"
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(said + f"{prog}: the daemon stopped before it was ready\n")
        sys.stderr.flush()
    return 1


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
