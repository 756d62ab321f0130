"""The Daemon session: a port of POE::Component::Daemon 0.1004.

Discussion
----------
The component is an object whose methods are the states of one session
(``object_states``), as in the seed; a method marked ``@state`` is one
(:mod:`._states`).  ``spawn()`` opens the logfile, drops privileges and
detaches (in that order), then creates the session, whose ``_start`` sets the
alias, watches TERM/INT/HUP/CHLD and starts one of three modes
(:class:`~._mode.Mode`, decided once from the configuration):

* **pre-forking** (``start_children``): fork the initial children; a check of
  the scoreboard every second forks spares while fewer than ``min_spare`` wait
  and SIGINTs extras beyond ``max_spare`` (:class:`~._prefork.PreforkPool`);
* **post-forking** (``max_children`` alone): ``update_status('req', info)`` in
  the parent forks at once and the child gets ``daemon_child`` before the
  parent's loop runs again; ``daemon_pause``/``daemon_accept`` keep the number
  of children at most ``max_children`` (:class:`~._postfork.PostforkPool`);
* **non-forking**: housekeeping only.

The states are thin: what they work on lives in objects the component owns,
each existing only while it means something -- the configuration; the
:class:`~._pool.Pool` (the parent of a forking mode: children, scoreboard,
forks pending and failed, the babysitter, the brake); the
:class:`~._child.ChildRole` (a forked child: its slot, its parent, its
requests); the :class:`~._services.DaemonServices` (launcher, pidfile,
control socket, systemd).  A state that needs the pool asks whether there is
one; there is no flag to keep in step with it.

Where we do better than the seed (see docs/daemon-differences.md): a child
that exits is replaced at once, on its CHLD, not at the next one-second check;
post-forking backpressure is signalled synchronously, so no child is forked
beyond ``max_children``; children learn of their parent's death
(``PR_SET_PDEATHSIG``); a stop escalates to SIGKILL after
``shutdown_timeout``; the parent closes the accepted socket it handed to a
post-forked child; a permanent fork failure shuts down cleanly.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kernelish import ARG0, ARG1, ARG2, ARG3, KERNEL, HandlerArgs, Session, current_kernel
from kernelish._activation import inherited_sockets

from . import _lean, _process
from ._config import DaemonSettings, make_config
from ._errors import DaemonConfigError, install_excepthook
from ._facade import Daemon
from ._mode import Mode
from ._pool import close_sockets
from ._postfork import PostforkPool
from ._prefork import PreforkPool
from ._process import kill, log, note
from ._services import DaemonServices
from ._startup import ProcessSetup
from ._states import state, states_of

if TYPE_CHECKING:
    from ._child import ChildRole
    from ._pool import Pool
    from ._scoreboard import Scoreboard

__all__ = ["DaemonComponent", "fork_process"]

#: The fork the component uses; fault-injection tests may replace it.
fork_process: Callable[[], int] = os.fork

#: The pool of each forking mode.
_POOLS = {Mode.PREFORK: PreforkPool, Mode.POSTFORK: PostforkPool}

#: Seconds an orphaned child (its parent died) gets to shut down before it
#: exits by itself; within the 1 s the reliability suite demands.
_ORPHAN_GRACE = 0.5


def _fork() -> int:
    # fork_process is looked up at each fork, so that a test may replace it.
    return fork_process()


class _Hybrid:
    """A method callable on the class (``DaemonComponent.spawn(...)``) or on
    an instance (``daemon.spawn(...)``), as Perl's ``spawn`` was."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    def __get__(self, obj: object, cls: type) -> Callable[..., Any]:
        return functools.partial(self.func, cls if obj is None else obj)


class DaemonComponent:
    """POE::Component::Daemon: detach, logfile, privileges, and a pool of
    pre-forked or post-forked children, as a session on the kernel.

    ``DaemonComponent.spawn(alias='Daemon', detach=True, logfile=...,
    start_children=..., ...)``; every parameter is validated by
    :class:`DaemonConfig` (a pydantic model, imported only for parameters
    outside the common shape: see :mod:`._config`) and a wrong one is refused
    with a message naming it.
    """

    def __init__(self, config: DaemonSettings, params: dict[str, Any] | None = None) -> None:
        self._params = dict(params or {})
        self._configure(config)
        self.session: Session | None = None
        self.services = DaemonServices(self)
        #: The parent's pool of children (forking modes, from ``_start`` on).
        self.pool: Pool | None = None
        #: What this process is, if it is a child the Daemon forked.
        self.child: ChildRole | None = None
        #: Children user code spawned (``foreign_child``): TERMed at shutdown.
        self.foreign_children: set[int] = set()
        #: Shutting down (the seed's ``die``).
        self.die = False
        #: QUIT asked for a fast stop: children get KILL at once.
        self.fast_stop = False
        self.told_parent = False
        #: Logfile, privileges, detach: what of them this process did.
        self.setup = ProcessSetup()
        self._parents_pool: Pool | None = None  # (in a child; see become_child)

    def _configure(self, config: DaemonSettings) -> None:
        self.config = config
        #: Non-forking, pre-forking or post-forking.
        self.mode = Mode.of(config)
        self._expedited = self.mode.expedited

    # -- what it is ---------------------------------------------------------------

    def is_prefork(self) -> bool:
        """Pre-forking: ``start_children`` is set (``is_prefork``)."""
        return self.mode is Mode.PREFORK

    def is_fork(self) -> bool:
        """Post-forking: ``max_children`` without ``start_children`` (``is_fork``)."""
        return self.mode is Mode.POSTFORK

    @property
    def is_child(self) -> bool:
        """Whether this process is a child the Daemon forked."""
        return self.child is not None

    @property
    def children(self) -> dict[int, int] | None:
        """The parent's children, pid -> scoreboard slot (None in a child, or
        without a pool)."""
        return self.pool.children if self.pool is not None else None

    @property
    def scoreboard(self) -> Scoreboard | None:
        """The pool's scoreboard, in the parent and in its children."""
        if self.pool is not None:
            return self.pool.scoreboard
        return self.child.scoreboard if self.child is not None else None

    # -- construction ---------------------------------------------------------

    @classmethod
    def new(cls, **params: Any) -> DaemonComponent:
        """Build the component without starting it (``new``); a wrong
        parameter raises :class:`DaemonConfigError`, one line naming it."""
        return cls(_config(params), params)

    @_Hybrid
    def spawn(self_or_cls: Any, **params: Any) -> DaemonComponent:
        """Start the daemon (``spawn``): logfile, privileges, detach, session.

        On the class it builds a new component from ``params``; on an
        instance it adds ``params`` to the instance's configuration first.
        Returns the component (its session is ``.session``).
        """
        install_excepthook()  # an uncaught start-up refusal: one line
        if isinstance(self_or_cls, DaemonComponent):
            self = self_or_cls
            if params:
                # Perl's spawn on an object: defined values override.
                self._params.update({k: v for k, v in params.items() if v is not None})
                self._configure(_config(self._params))
        else:
            self = self_or_cls.new(**params)
        inherited_sockets()  # LISTEN_FDS names this pid: read it before any fork
        # Refusals come first, while stderr is still the terminal: systemd
        # env, pidfile check, the logfile's checks.
        self.services.before_detach()
        logfd = self.setup.open_log(self.config)
        # With detach, the launching process stays here until the daemon is up.
        self.services.launch_wait()
        # ... and gets a copy of stderr, once it is the logfile.
        self.setup.use_log(logfd, self.config.verbose, self.services.logging)
        self.drop_privs()
        self.detach()
        self.services.after_detach()  # pidfile written and locked
        self.create_session()
        return self

    def open_logfile(self) -> bool:
        """Send stdout/stderr to the logfile (``open_logfile``); once."""
        fd = self.setup.open_log(self.config)
        return self.setup.use_log(fd, self.config.verbose, self.services.logging)

    def drop_privs(self) -> None:
        """Become ``user``/``group`` for good (``drop_privs``); once."""
        if self.config.uid is not None or self.config.gid is not None:
            self._import_needs()
        self.setup.drop_privs(self.config)

    def _import_needs(self) -> None:
        """Import now what this Daemon imports only when first used (see
        :mod:`._config`): once privileges are dropped, the user may no longer
        read the files of the interpreter's library."""
        if self.mode.forks:
            _process.load_prctl()  # ctypes
        if self.config.babysit is not None:
            import psutil  # noqa: F401
        if self.config.pidfile is not None:
            import fcntl  # noqa: F401
            import json  # noqa: F401

    def detach(self) -> None:
        """Fork twice and ``setsid()`` (``detach``); once, and only if asked."""
        self.setup.detach(self.config)

    def create_session(self) -> Session | None:
        """Create the component's session (``create_session``): every
        ``@state`` method is a state."""
        self.session = Session.create(object_states=[(self, states_of(type(self)))])
        return self.session

    # -- session life ---------------------------------------------------------

    @state
    def _start(self, _: HandlerArgs) -> None:
        kernel = _[KERNEL]
        kernel.alias_set(self.config.alias)
        Daemon._attach(self)
        kernel.sig("TERM", "sig_TERM")
        kernel.sig("CHLD", "sig_CHLD")
        if self.config.logfile is not None:
            kernel.sig("HUP", "sig_HUP")
        kernel.sig("INT", "sig_INT")
        kernel.sig("QUIT", "sig_QUIT")  # fast stop, also during a graceful one
        kernel.sig("USR2", "sig_USR2")
        self.services.started()  # control socket, watchdog
        self.inform_others("daemon_start")
        pool_class = _POOLS.get(self.mode)
        if pool_class is not None:
            pool = self.pool = pool_class(self.config, kernel, _fork, self.inform_others)
            _process.load_prctl()  # now, so that no child looks it up
            pool.start()
            if pool.sitter is not None:
                kernel.yield_("babysit")
        kernel.yield_("waste_time")

    @state
    def _stop(self, _: HandlerArgs) -> None:
        Daemon._detach(self)
        self.services.stopped()  # pidfile removed
        note(self.config.verbose, "Server is stopping")

    @state
    def waste_time(self, _: HandlerArgs) -> None:
        """Keep the daemon alive; tell others we are the parent, once."""
        if self.child is not None:
            return
        if not self.told_parent:
            self.told_parent = True
            self.inform_others("daemon_parent")
            self.services.ready()  # the pool is up: READY=1
        if not self.die:
            _[KERNEL].delay("waste_time", 600)

    # -- forking --------------------------------------------------------------

    def fork_off(self, n: int | list[Any]) -> None:
        """Start forking ``n`` children, or one per request in a list."""
        if self.pool is not None:
            self.pool.fork_off(n)

    @state
    def fork(self, _: HandlerArgs) -> None:
        """Fork one child (the ``fork`` state)."""
        pool, req = self.pool, _[ARG0]
        if pool is None or self.die:
            if req is not None:  # nobody will serve it (here: a child's copy)
                close_sockets(req)
            return
        child = pool.fork_one(req)
        if child is not None:
            self.become_child(child, req)

    @state
    def retry(self, _: HandlerArgs) -> None:
        """Retry the forks that failed for a temporary reason."""
        if self.pool is None:
            log.warning("%d: We are a child, why are we forking?", os.getpid())
            return
        self.pool.retry()

    def become_child(self, child: ChildRole, req: Any) -> None:
        """Turn this process, just forked, into a child (``become_child``;
        the seed's took the slot, which ``child`` holds): the pool goes,
        the child's role comes, and ``daemon_child`` is signalled with
        ``req``."""
        pool = self.pool
        if pool is None:
            raise RuntimeError("become_child: only a forking Daemon's parent has children")
        if self.config.verbose:  # no formatting work in a quiet child's start
            note(True, "Created %s", time.ctime())
        Daemon._child = True
        _lean.exit_lean()  # no interpreter teardown at exit
        self.child = child
        # The pool is the parent's: never used here, and never freed either
        # (freeing it would copy the pages it sits on, for nothing).
        self.pool, self._parents_pool = None, pool
        if pool.failed:  # the parent retries them: our copies of their sockets go
            for failed in pool.failed:
                close_sockets(failed)
        _process.die_with_parent()
        self.services.in_child()  # no notify, pidfile lock, control socket
        kernel = pool.kernel
        kernel.sig("CHLD")
        kernel.sig("INT")
        kernel.sig("QUIT")
        # A spare that is told to go (SIGINT) goes at once, as Perl's would.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
        kernel.delay("babysit")
        kernel.delay("check_scoreboard")
        kernel.delay("rogues")
        kernel.delay("retry")
        child.started()
        if os.getppid() != child.parent_pid:  # pragma: no cover - the parent died already
            os.kill(os.getpid(), signal.SIGTERM)
        self.inform_others("daemon_child", req)

    # -- the scoreboard -------------------------------------------------------

    @state
    def check_scoreboard(self, _: HandlerArgs) -> None:
        """Keep ``min_spare``..``max_spare`` children waiting (pre-forking),
        or pause/resume accepting (post-forking): the pool's ``check``."""
        pool = self.pool
        if pool is None or self.die:
            return
        again = pool.check()
        self.services.status_changed()  # STATUS= if it changed
        _[KERNEL].delay("check_scoreboard", again)

    @state
    def update_status(self, _: HandlerArgs) -> None:
        """User code tells us its new status (``update_status``): 'req',
        'long', 'wait' or 'done' in a child; 'req' with the request in a
        post-forking parent."""
        status = _[ARG0]
        if self.child is not None:
            self.child.update_status(status)
        elif self.pool is not None:
            self.pool.update_status(status, _[ARG1])
        else:
            log.warning("%d: Non-forking server doesn't need to update status", os.getpid())

    def brake_text(self) -> str:
        """The crash-loop brake, in words for ``status`` ('' when off)."""
        return self.pool.brake_text() if self.pool is not None else ""

    @state
    def status(self, _: HandlerArgs | None = None) -> str:
        """The human-readable status text (``status``), line for line the
        seed's: class name, mode, children, then the scoreboard."""
        lines = [type(self).__name__, self.mode.title]
        if self.mode.forks:
            lines[1] += ", we are a child" if self.child is not None else ", we are the parent"
        if self.pool is not None:
            lines.extend(self.pool.status_lines())
        text = "\n    ".join(lines) + "\n"
        board = self.scoreboard
        return text + board.status() if board is not None else text

    # -- babysitting ----------------------------------------------------------

    @state
    def babysit(self, _: HandlerArgs) -> None:
        """Check the children every ``babysit`` seconds (``babysit``; see
        :class:`~._babysit.Babysitter`)."""
        pool = self.pool
        if pool is not None and pool.sitter is not None and not self.die:
            pool.sitter.babysit()

    @state
    def rogues(self, _: HandlerArgs) -> None:
        """Escalate on rogue children: INT, TERM, KILL, ``2 * babysit``
        apart, then a fake CHLD (``rogues``)."""
        pool = self.pool
        if pool is not None and pool.sitter is not None and not self.die:
            pool.sitter.escalate()

    # -- signals --------------------------------------------------------------

    def expedite_signal(self, name: str, *args: Any) -> None:
        """Call every watcher of ``name`` now, not through the queue
        (``expedite_signal``): the parent's loop must not run in between."""
        kernel = current_kernel()
        for session, event in kernel.signal_watchers(name).items():
            kernel.call(session, event, name, *args)
        # The callables subscribed with kernel.events.on() (sessions' own
        # watchers there do nothing when emitted: they ran just above).
        kernel.events.emit(name, name, *args)

    def inform_others(self, name: str, *args: Any) -> None:
        """Broadcast one of the ``daemon_*`` signals (``inform_others``).

        ``daemon_child`` in a post-forked child, and ``daemon_pause`` /
        ``daemon_accept`` in a post-forking parent, are expedited.
        """
        if name in self._expedited:
            self.expedite_signal(name, *args)
        else:
            kernel = current_kernel()
            kernel.signal(kernel, name, *args)

    @state
    def foreign_child(self, _: HandlerArgs) -> None:
        """Adopt a child spawned by user code: TERMed at shutdown."""
        self.foreign_children.add(int(_[ARG0]))

    @state
    def sig_CHLD(self, _: HandlerArgs) -> None:
        """A child exited (from ``sig_child``, the CHLD signal, or a fake CHLD
        from the babysitter): free its slot, and replace it at once."""
        pid = _[ARG1]
        if pid in self.foreign_children:
            self.foreign_children.discard(pid)
            return
        pool = self.pool
        if pool is None or not pool.child_exited(pid, _[ARG2], bool(_[ARG3]), self.die):
            return
        if self.die and not pool.children:
            _[KERNEL].delay("shutdown_escalate")

    @state
    def sig_INT(self, _: HandlerArgs) -> None:
        """INT: shut down (the signal is handled, so the session lives on)."""
        note(self.config.verbose, "SIGINT")
        _[KERNEL].yield_("shutdown")
        _[KERNEL].sig_handled()

    @state
    def sig_QUIT(self, _: HandlerArgs) -> None:
        """QUIT (the parent): stop *now* -- children get KILL at once, without
        finishing their requests; the parent still removes its pidfile and
        socket.  Also during a graceful stop (TERM) that takes too long."""
        kernel = _[KERNEL]
        kernel.sig_handled()
        if self.child is not None:
            return
        note(self.config.verbose, "SIGQUIT")
        self.fast_stop = True
        if not self.die:
            kernel.call(kernel.get_active_session(), "shutdown")
        kernel.call(kernel.get_active_session(), "shutdown_escalate")

    @state
    def sig_TERM(self, _: HandlerArgs) -> None:
        """TERM: shut down, TERMing the children (daemontools' ``svc -d``)."""
        note(self.config.verbose, "SIGTERM")
        kernel = _[KERNEL]
        kernel.yield_("shutdown")
        kernel.sig_handled()
        if self.child is not None and os.getppid() != self.child.parent_pid:
            # The parent died: nobody will escalate for us.  (This timer also
            # holds the child until it fires, so it is the child's exit time.)
            kernel.delay("orphaned", _ORPHAN_GRACE)

    @state
    def orphaned(self, _: HandlerArgs) -> None:
        """A child whose parent died and that is still here after a while."""
        parent = self.child.parent_pid if self.child is not None else None
        log.warning("%d: parent %s is gone; exiting", os.getpid(), parent)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(0)

    @state
    def sig_HUP(self, _: HandlerArgs) -> None:
        """HUP: reopen the logfile (log rotation)."""
        logfile = self.config.logfile
        note(self.config.verbose, "SIGHUP (logfile=%s)", logfile)
        _[KERNEL].sig_handled()
        self.services.reloading()
        if logfile is not None:
            self.setup.reopen_log(logfile)
        self.services.reloaded()

    @state
    def sig_USR2(self, _: HandlerArgs) -> None:
        """USR2: write the verbose peek dump to stderr (the logfile)."""
        text = Daemon.peek(True, file=sys.stderr)
        self.services.peeked(text)  # to `kernelish peek`

    # -- stopping -------------------------------------------------------------

    @state
    def shutdown(self, _: HandlerArgs) -> None:
        """Stop: TERM the children, drop alias, timers and signal watchers
        so the kernel can exit, broadcast ``daemon_shutdown``.

        TERM (and INT) is a graceful stop: a child's ``daemon_shutdown``
        handler stops accepting and closes its connection once the request
        under way is answered (see examples/_lineserver.py); whatever is left
        after ``shutdown_timeout`` gets KILL (``shutdown_escalate``) --
        gunicorn's TERM, Apache's graceful-stop."""
        kernel = _[KERNEL]
        note(self.config.verbose, "shutdown")
        kernel.delay("rogues")
        pool = self.pool
        if pool is not None:
            pool.signal_all(signal.SIGTERM)
        for pid in list(self.foreign_children):
            kill(pid, signal.SIGTERM)
        if self.die:
            return
        if self.child is not None:
            self.child.leave()  # slot 'e'
        kernel.alias_remove(self.config.alias)
        kernel.delay("waste_time")
        kernel.delay("check_scoreboard")
        kernel.delay("babysit")
        kernel.delay("retry")
        self.die = True
        self.services.stopping()  # STOPPING=1, control socket closed
        self.inform_others("daemon_shutdown")
        for name in ("CHLD", "HUP", "INT", "TERM", "USR2"):
            kernel.sig(name)
        if pool is not None and pool.children:
            kernel.delay("shutdown_escalate", self.config.shutdown_timeout)

    @state
    def shutdown_escalate(self, _: HandlerArgs) -> None:
        """Children that ignored TERM for ``shutdown_timeout`` get KILL (at
        once after QUIT)."""
        if self.pool is not None:
            self.pool.kill_all(self.fast_stop, self.config.shutdown_timeout)


def _config(params: dict[str, Any]) -> DaemonSettings:
    try:
        return make_config(params)
    except ValueError as exc:  # pydantic's ValidationError (imported only if raised)
        if type(exc).__name__ != "ValidationError" or not hasattr(exc, "errors"):
            raise
        raise DaemonConfigError.from_validation(exc) from None  # type: ignore[arg-type]
