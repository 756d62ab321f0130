"""The pipes, socket pair or pty between a Run wheel and its child.

Which streams get a conduit follows POE::Wheel::Run 1.370's code, not its
POD: stdout gets one only with a StdoutEvent, stderr only with a StderrEvent,
stdin unless NoStdin or RedirectStdin; a stream without one is inherited
from the parent (a daemon's are /dev/null).  Two deliberate differences:

* ``socketpair`` really is a socket pair (POE 1.370 passes the type to
  nobody and makes pipes): one for stdin and stdout, so ``shutdown_stdin``
  is a half-close, and a pipe for stderr, as POE's OneWay would be.
* ``pty-pipe`` without a StderrEvent leaves stderr inherited, where POE makes
  a pipe it never reads (a chatty child then blocks when it fills).

The slave side of a pty is set raw (no echo, no CR/LF translation: POE's
``set_raw``) and given the Winsize, or the parent's terminal size when the
parent's stdin is a terminal (POE's POD).  Every fd is close-on-exec and at
least 3, so the child's dup2 onto 0-2 never clobbers one it still needs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
import termios
import tty
from dataclasses import dataclass, field
from typing import Any

from ._run_params import RunParams, refuse

__all__ = ["End", "Plumbing", "make_plumbing"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class End:
    """A descriptor the parent owns: closed with its last reference, as Perl
    closes a handle (and never twice: :meth:`close` forgets the number)."""

    __slots__ = ("__weakref__", "fd", "is_socket")

    def __init__(self, fd: int, *, is_socket: bool = False) -> None:
        self.fd = fd
        self.is_socket = is_socket

    def fileno(self) -> int:
        """The descriptor, or -1 once closed."""
        return self.fd

    def close(self) -> None:
        """Close it (once)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def shutdown_write(self) -> None:
        """Half-close a socket: the peer reads end of file."""
        if self.is_socket and self.fd >= 0:
            sock = socket.socket(fileno=self.fd)
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            finally:
                sock.detach()

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<End fd={self.fd}>"


@dataclass
class Plumbing:
    """Both sides of the conduits of one child."""

    #: the parent's ends (stdin and stdout may be one End: socket pair, pty)
    stdin: End | None = None
    stdout: End | None = None
    stderr: End | None = None
    #: ends the parent keeps open but does not use (a pty nobody reads)
    keep: list[End] = field(default_factory=list)
    #: what becomes the child's fds 0, 1, 2 (None: inherited)
    child: list[int | None] = field(default_factory=lambda: [None, None, None])
    #: fds the parent opened for the child, closed once it started
    child_owned: list[int] = field(default_factory=list)
    #: the pty's slave, which the child opens to make it its terminal
    slave_path: str | None = None
    pty: bool = False

    def parent_ends(self) -> list[End]:
        """Every parent end, once each."""
        ends: list[End] = []
        for end in (self.stdin, self.stdout, self.stderr, *self.keep):
            if end is not None and all(end is not e for e in ends):
                ends.append(end)
        return ends

    def close_child_side(self) -> None:
        """The parent's copies of the child's fds: closed once it started."""
        while self.child_owned:
            with contextlib.suppress(OSError):
                os.close(self.child_owned.pop())

    def close_all(self) -> None:
        """Construction failed: close everything."""
        self.close_child_side()
        for end in self.parent_ends():
            end.close()


def _high(fd: int) -> int:
    """``fd`` moved to 3 or above (a parent whose stdio is closed gets low
    numbers from pipe(); the child's dup2 onto 0-2 must not clobber them)."""
    if fd > 2:
        return fd
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)  # on failure ``fd`` is the caller's
    os.close(fd)
    return high


def _pipe() -> tuple[int, int]:
    r, w = os.pipe()
    try:
        r = _high(r)
        w = _high(w)
    except OSError:
        os.close(r)
        os.close(w)
        raise
    return r, w


def _open_redirect(plumbing: Plumbing, spec: Any, param: str, writing: bool) -> int:
    """The fd a Redirect* parameter names: a path is opened here, in the
    parent, without following a symlink at its end (a planted link must
    not redirect a root daemon's child into /etc/passwd); a file or an fd
    given by the caller is used as it is and stays the caller's."""
    if isinstance(spec, int):
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        return int(spec.fileno())
    flags = (os.O_WRONLY | os.O_CREAT | os.O_TRUNC) if writing else os.O_RDONLY
    try:
        plumbing.child_owned.append(os.open(spec, flags | _NOFOLLOW | os.O_CLOEXEC, 0o666))
    except OSError as exc:
        where = os.fsdecode(spec)
        raise refuse(f"{param} {where!r} cannot be opened: {exc.strerror}", param) from exc
    fd = plumbing.child_owned[-1] = _high(plumbing.child_owned[-1])
    return fd


def _pty(plumbing: Plumbing, winsize: tuple[int, ...] | None) -> tuple[End, int]:
    """A pty: the parent's End on the master, the slave's fd (child-owned)."""
    master_fd, slave = os.openpty()
    master = End(master_fd)  # closed with its last reference on failure
    plumbing.child_owned.append(slave)
    master.fd = _high(master.fd)
    slave = plumbing.child_owned[-1] = _high(slave)
    tty.setraw(slave)
    if winsize is None and os.isatty(0):
        with contextlib.suppress(OSError):
            size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
            winsize = struct.unpack("HHHH", size)
    if winsize is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *winsize))
    plumbing.slave_path = os.ttyname(slave)
    plumbing.pty = True
    return master, slave


def make_plumbing(p: RunParams) -> Plumbing:
    """Make the conduits ``p`` asks for."""
    plumbing = Plumbing()
    try:
        _make(plumbing, p)
    except BaseException:
        plumbing.close_all()
        raise
    return plumbing


def _make(plumbing: Plumbing, p: RunParams) -> None:
    child = plumbing.child
    out_redirect = p.redirect_output if p.redirect_output is not None else p.redirect_stdout
    err_redirect = p.redirect_output if p.redirect_output is not None else p.redirect_stderr
    if p.redirect_stdin is not None:
        child[0] = _open_redirect(plumbing, p.redirect_stdin, "RedirectStdin", False)
    if out_redirect is not None:
        name = "RedirectOutput" if p.redirect_output is not None else "RedirectStdout"
        child[1] = _open_redirect(plumbing, out_redirect, name, True)
    if err_redirect is not None:
        if p.redirect_output is not None:
            child[2] = child[1]
        else:
            child[2] = _open_redirect(plumbing, err_redirect, "RedirectStderr", True)

    if p.conduit in ("pty", "pty-pipe"):
        wanted = (
            p.stdin_event is not None
            or p.stdout_event is not None
            or p.stderr_event is not None
            or not p.no_stdin
        )
        if not wanted:
            return
        master, slave = _pty(plumbing, p.winsize)
        if not p.no_stdin:
            plumbing.stdin = master
        if p.stdout_event is not None:
            plumbing.stdout = master
        if plumbing.stdin is None and plumbing.stdout is None:
            plumbing.keep.append(master)
        # The child's 0-2 come from opening slave_path (see _spawn); the fd
        # itself serves the paths that cannot open it (fork).
        child[0] = child[1] = slave
        if p.conduit == "pty":
            child[2] = slave
        elif p.stderr_event is not None:
            r, w = _pipe()
            plumbing.stderr = End(r)
            plumbing.child_owned.append(w)
            child[2] = w
        return

    want_stdin = p.redirect_stdin is None and not p.no_stdin
    want_stdout = p.stdout_event is not None and out_redirect is None
    if p.conduit == "socketpair" and (want_stdin or want_stdout):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        end = End(ours.detach(), is_socket=True)
        plumbing.child_owned.append(theirs.detach())
        plumbing.keep.append(end)  # closed with the rest if _high fails
        end.fd = _high(end.fd)
        child_fd = plumbing.child_owned[-1] = _high(plumbing.child_owned[-1])
        plumbing.keep.remove(end)
        if want_stdin:
            plumbing.stdin = end
            child[0] = child_fd
        if want_stdout:
            plumbing.stdout = end
            child[1] = child_fd
    else:
        if want_stdin:
            r, w = _pipe()
            plumbing.stdin = End(w)
            plumbing.child_owned.append(r)
            child[0] = r
        if want_stdout:
            r, w = _pipe()
            plumbing.stdout = End(r)
            plumbing.child_owned.append(w)
            child[1] = w
    if p.stderr_event is not None and err_redirect is None:
        r, w = _pipe()
        plumbing.stderr = End(r)
        plumbing.child_owned.append(w)
        child[2] = w
