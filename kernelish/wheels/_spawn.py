"""Starting a Run wheel's child: exec without forking the parent, or fork.

Discussion
----------
POE::Wheel::Run forks, sets the child up (process group or session,
terminal, signals, priority, user, stdio), then execs the program or calls
the code.  In Python a ``fork()`` of a daemon costs in proportion to its
memory: the kernel copies the page tables, then every page either process
writes is copied again (POE-SEMANTICS does not care; a 200 MB Python daemon
does).  So a *program* is started the way :mod:`subprocess` starts one --
``vfork()`` (or ``clone(CLONE_VM|CLONE_VFORK)``) and ``exec`` at once, no
Python code in between, no page tables copied:

* pipe and socketpair conduits: :class:`subprocess.Popen` with our own fds
  as its stdin/stdout/stderr, ``close_fds=True``, ``process_group=0`` (POE's
  ``setpgrp``), ``user``/``group``/``extra_groups``.  Without a preexec_fn
  CPython uses vfork; with User or Group it uses a plain C fork (setuid in
  a vfork child is unsafe), still without running any Python in the child.
  The Popen object is dropped at once, its ``returncode`` set so that
  neither its ``__del__`` nor :func:`subprocess._cleanup` ever calls
  ``waitpid`` on the pid: the kernel's reaper owns the child, and its exit
  status arrives through ``sig_child`` as in POE.
* pty conduits: the child must lead a new session and open the slave so it
  becomes its controlling terminal, which subprocess cannot do without a
  preexec_fn (and a preexec_fn means a full fork with every at-fork hook).
  :func:`os.posix_spawnp` can: ``setsid=True`` runs before the file
  actions, and an ``open`` action of the slave's path then acquires it.
  posix_spawn closes no descriptors, so inheritable ones (Python opens none;
  a parent may have been handed some) get a ``close`` action each.

Priority (a delta, as POE's) is applied from the parent with
``setpriority(pid)`` right after the start: a preexec_fn or a ``nice``
wrapper would cost a fork or an exec.  The program may run for the few
microseconds before that at the parent's priority.

When the exec fails (a missing or unexecutable program), subprocess and
posix_spawn report it as an exception and reap the child themselves.  POE
reports it from the child -- ``can't exec (PROGRAM) in child pid N: ERROR``
on its stderr and exit status ``errno`` -- and a ported daemon relies on
that (``new`` does not die; the error arrives as StderrEvent and CHLD).  So
the start is retried through the fork path, whose child tries the exec and
reports the failure POE's way.  That costs a fork, but only for a failure.

The fork path -- a callable Program, a pty with User/Group, the report of
a failed exec -- is a real :func:`os.fork`: the kernel's at-fork hook gives
the child a fresh selector, wakeup pipe and ID, and the child sets itself up
in POE's order and never returns into the parent's code (``os._exit`` in a
``finally``).  A callable runs with ``ProgramArgs`` as its arguments; its
return ends the child with status 0, ``sys.exit(n)`` with ``n``, an
exception with its traceback on stderr and status 1 (POE: 255).  Python
handlers of signals are reset to the default first (POE resets ``%SIG``), so
``kill()`` reaches a child that never runs the kernel; a child that wants a
kernel of its own calls ``kernel.stop()`` first and starts sessions, as
POE's POD says.  ``CloseOnCall`` points every descriptor above 2 at
/dev/null rather than closing it: the parent's objects in the child's copy
of the heap still own those numbers, and one closed by the garbage
collector later must not close a file the child has opened since.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import pwd
import signal
import subprocess
import sys
import termios
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from ._conduit import End, Plumbing
from ._run_params import RunParams, argv_of, describe_program

__all__ = ["Identity", "start_child"]

log = logging.getLogger("kernelish.wheels")

#: Streams the fork path replaced in a child (kept so nothing finalizes them).
_replaced: list[Any] = []

#: Signals Python ignores at startup, restored for an exec (subprocess's
#: ``restore_signals``).
_PYTHON_IGNORES = (signal.SIGPIPE, signal.SIGXFSZ)


@dataclass(frozen=True)
class Identity:
    """Who the child runs as: POE's ``User``/``Group``, resolved."""

    uid: int | None = None
    gid: int | None = None
    #: supplementary groups to set (root only); None: keep the parent's
    groups: list[int] | None = None

    @classmethod
    def of(cls, uid: int | None, gid: int | None) -> Identity:
        """Resolve User/Group, refusing what the process cannot do.

        POE sets the ids and goes on as the parent's user when that fails;
        kernelish raises :class:`PermissionError` here instead.  With User
        alone the child gets that user's primary and supplementary groups
        (as ``su`` would), where POE would leave it in root's group."""
        if uid is None and gid is None:
            return cls()
        root = os.geteuid() == 0
        groups: list[int] | None = None
        if uid is not None:
            try:
                entry: pwd.struct_passwd | None = pwd.getpwuid(uid)
            except KeyError:
                entry = None
            if gid is None and entry is not None:
                gid = entry.pw_gid
            if root:
                if entry is not None and gid is not None:
                    groups = os.getgrouplist(entry.pw_name, gid)
                else:
                    groups = [gid] if gid is not None else []
        if not root:
            if uid is not None and uid not in os.getresuid():
                raise PermissionError(
                    f"Run: User {uid} needs root (this process runs as uid {os.geteuid()})"
                )
            if gid is not None and gid not in os.getresgid():
                raise PermissionError(
                    f"Run: Group {gid} needs root (this process runs as gid {os.getegid()})"
                )
        return cls(uid, gid, groups)

    @property
    def changes(self) -> bool:
        """Whether the child changes user or group."""
        return self.uid is not None or self.gid is not None


def start_child(p: RunParams, plumbing: Plumbing, identity: Identity) -> int:
    """Start the child; returns its pid.  Raises OSError when it cannot be
    started at all (no fork, no permission); a program that cannot be
    executed is started anyway, POE's way (see the module notes)."""
    program = p.program
    if callable(program):
        return _fork(p, plumbing, identity, None)
    argv = argv_of(program, p.program_args)
    if plumbing.pty and not p.no_set_sid:
        if identity.changes:
            return _fork(p, plumbing, identity, argv)
        try:
            pid = _spawn_terminal(argv, plumbing)
        except OSError:
            # posix_spawn fails only at the exec (or for want of a process,
            # which the fork then reports too).
            return _fork(p, plumbing, identity, argv)
    else:
        try:
            pid = _popen(argv, p, plumbing, identity)
        except OSError as exc:
            if exc.filename is None:
                raise  # not the exec: the fork, or User/Group refused
            return _fork(p, plumbing, identity, argv)
    renice(pid, p.priority)
    return pid


def _popen(argv: list[Any], p: RunParams, plumbing: Plumbing, identity: Identity) -> int:
    stdin, stdout, stderr = plumbing.child
    proc = subprocess.Popen(
        argv,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        close_fds=True,
        process_group=None if p.no_set_pgrp else 0,
        user=identity.uid,
        group=identity.gid,
        extra_groups=identity.groups,
    )
    # The kernel's reaper owns this child (see the module notes).
    proc.returncode = 0
    return proc.pid


def _spawn_terminal(argv: list[Any], plumbing: Plumbing) -> int:
    """posix_spawn a program into a new session whose controlling terminal
    is the pty's slave."""
    assert plumbing.slave_path is not None
    slave = plumbing.child[0]
    actions: list[tuple[Any, ...]] = [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds()]
    actions.append((os.POSIX_SPAWN_OPEN, 0, plumbing.slave_path, os.O_RDWR, 0))
    actions.append((os.POSIX_SPAWN_DUP2, 0, 1))
    stderr = plumbing.child[2]
    if stderr is not None:
        actions.append((os.POSIX_SPAWN_DUP2, 0 if stderr == slave else stderr, 2))
    return os.posix_spawnp(
        argv[0],
        argv,
        os.environ,
        file_actions=actions,
        setsid=True,
        setsigmask=(),
        setsigdef=_PYTHON_IGNORES,
    )


def _open_fds() -> list[int]:
    """This process's open fds above 2 (one of them may be the listing's
    own, closed by the time the caller looks at it)."""
    for where in ("/proc/self/fd", "/dev/fd"):
        try:
            return [fd for fd in map(int, os.listdir(where)) if fd > 2]
        except OSError:
            continue
    fds = []  # pragma: no cover - neither /proc nor /dev/fd
    for fd in range(3, min(os.sysconf("SC_OPEN_MAX"), 65536)):
        with contextlib.suppress(OSError):
            os.fstat(fd)
            fds.append(fd)
    return fds


def _inheritable_fds() -> list[int]:
    fds = []
    for fd in _open_fds():
        with contextlib.suppress(OSError):  # the listing's own fd
            if os.get_inheritable(fd):
                fds.append(fd)
    return fds


def renice(pid: int, delta: int) -> None:
    """Add ``delta`` to ``pid``'s niceness, relative to ours (POE's Priority)."""
    if not delta:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, 0) + delta)
    except OSError as exc:
        log.warning(
            "%d: Run: cannot change the priority of %d by %+d: %s",
            os.getpid(),
            pid,
            delta,
            exc.strerror,
        )


def pidfd_of(pid: int) -> End | None:
    """A pidfd for ``pid`` (signals through it never reach a later process
    that reused the pid), or None where the system has none."""
    try:
        return End(os.pidfd_open(pid))
    except (AttributeError, OSError):
        return None


# -- the fork path --------------------------------------------------------------


def _flush_std_streams() -> None:
    """Flush before fork, or the child's copy of the buffers is written
    twice (multiprocessing does the same)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


def _fork(p: RunParams, plumbing: Plumbing, identity: Identity, argv: list[Any] | None) -> int:
    _flush_std_streams()
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        code = _child(p, plumbing, identity, argv)
    except SystemExit as exc:
        code = _exit_status(exc)
    except BaseException:
        code = 1
        _flush_std_streams()
        with contextlib.suppress(BaseException):
            # To fd 2 itself: a failure in the setup comes before sys.stderr
            # is the child's.
            os.write(2, traceback.format_exc().encode(errors="replace"))
    finally:
        _leave(code)


def _leave(code: int) -> NoReturn:
    _flush_std_streams()
    os._exit(code)


def _exit_status(exc: SystemExit) -> int:
    """The exit status ``sys.exit(value)`` means, as the interpreter's."""
    value = exc.code
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    with contextlib.suppress(BaseException):
        print(value, file=sys.stderr)
    return 1


def _child(p: RunParams, plumbing: Plumbing, identity: Identity, argv: list[Any] | None) -> int:
    """The child's setup in POE's order, then the exec or the call."""
    for end in plumbing.parent_ends():
        end.close()
    if plumbing.pty and not p.no_set_sid:
        os.setsid()
        slave = plumbing.child[0]
        assert slave is not None
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    elif not p.no_set_pgrp:
        os.setpgid(0, 0)
    _default_signals(exec_next=argv is not None)
    if p.priority:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0) + p.priority)
        except OSError as exc:
            os.write(
                2, f"Run: cannot change the priority by {p.priority:+d}: {exc.strerror}\n".encode()
            )
    if identity.groups is not None:
        os.setgroups(identity.groups)
    if identity.gid is not None:
        os.setresgid(identity.gid, identity.gid, identity.gid)
    if identity.uid is not None:
        os.setresuid(identity.uid, identity.uid, identity.uid)
    _stdio(plumbing.child)
    plumbing.close_child_side()
    if argv is not None:
        return _exec(argv, describe_program(p.program))
    program: Callable[..., Any] = p.program
    if p.close_on_call:
        _neutralize_fds()
    _new_std_streams()
    return _call(program, p.program_args)


def _call(program: Callable[..., Any], args: tuple[Any, ...]) -> int:
    """Run a callable Program: its return means 0, whatever it returns."""
    try:
        program(*args)
    except SystemExit as exc:
        return _exit_status(exc)
    except BaseException as exc:
        # The traceback from the callable down, as an uncaught exception in
        # a script of its own would show it.
        traceback.print_exception(
            type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None
        )
        return 1
    return 0


def _default_signals(exec_next: bool) -> None:
    """Python-level handlers back to the default (POE resets ``%SIG``); for
    an exec, also the signals Python itself ignores, as subprocess does."""
    for num in signal.valid_signals():
        with contextlib.suppress(OSError, ValueError):
            handler = signal.getsignal(num)
            if callable(handler) or (exec_next and num in _PYTHON_IGNORES):
                signal.signal(num, signal.SIG_DFL)


def _stdio(fds: list[int | None]) -> None:
    """Make ``fds`` the child's 0, 1 and 2 (each first moved above 2, so
    one dup2 never clobbers the source of the next)."""
    high = [None if fd is None else fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) for fd in fds]
    for target, fd in enumerate(high):
        if fd is not None:
            os.dup2(fd, target)
            os.close(fd)


def _exec(argv: list[Any], shown: str) -> int:
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        message = f"can't exec ({shown}) in child pid {os.getpid()}: {exc.strerror}\n"
        with contextlib.suppress(OSError):
            os.write(2, message.encode(errors="replace"))
        return exc.errno or 1
    return 1  # pragma: no cover - execvp does not return


def _neutralize_fds() -> None:
    """CloseOnCall: every fd above 2 becomes /dev/null (see module notes)."""
    fds = _open_fds()
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for fd in fds:
            if fd != null:
                with contextlib.suppress(OSError):
                    os.dup2(null, fd, inheritable=False)
    finally:
        os.close(null)


def _new_std_streams() -> None:
    """``sys.stdin``/``stdout``/``stderr`` on the child's fds 0-2, line
    buffered (POE turns autoflush on); ``.buffer`` writes need a flush."""
    _replaced.append((sys.stdin, sys.stdout, sys.stderr))
    sys.stdin = _stream(0, "r")
    sys.stdout = _stream(1, "w")
    sys.stderr = _stream(2, "w")


def _stream(fd: int, mode: str) -> Any:
    try:
        raw = io.FileIO(fd, mode, closefd=False)
    except OSError:
        return None
    if mode == "r":
        return io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8", errors="surrogateescape")
    return io.TextIOWrapper(
        io.BufferedWriter(raw),
        encoding="utf-8",
        errors="backslashreplace" if fd == 2 else "surrogateescape",
        line_buffering=True,
    )
