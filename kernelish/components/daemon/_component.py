"""The Daemon session: a port of POE::Component::Daemon 0.1004.

Discussion
----------
The component is an object whose methods are the states of one session
(``object_states``), as in the seed.  ``spawn()`` opens the logfile, drops
privileges and detaches (in that order), then creates the session, whose
``_start`` sets the alias, watches TERM/INT/HUP/CHLD and starts one of three
modes:

* **pre-forking** (``start_children``): fork the initial children; a check of
  the scoreboard every second forks spares while fewer than ``min_spare`` wait
  and SIGINTs extras beyond ``max_spare``;
* **post-forking** (``max_children`` alone): ``update_status('req', info)`` in
  the parent forks at once and the child gets ``daemon_child`` before the
  parent's loop runs again; ``daemon_pause``/``daemon_accept`` keep the number
  of children at most ``max_children``;
* **non-forking**: housekeeping only.

Where we do better than the seed (see docs/daemon-differences.md): a child
that exits is replaced at once, on its CHLD, not at the next one-second check;
post-forking backpressure is signalled synchronously, so no child is forked
beyond ``max_children``; children learn of their parent's death
(``PR_SET_PDEATHSIG``); a stop escalates to SIGKILL after
``shutdown_timeout``; the parent closes the accepted socket it handed to a
post-forked child; a permanent fork failure shuts down cleanly.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import pydantic

from kernelish import ARG0, KERNEL, HandlerArgs, Session, poe_kernel
from kernelish._activation import inherited_sockets

from . import _lean, _policy, _process
from ._babysit import Babysitter, _kill
from ._config import DaemonConfig
from ._errors import DaemonConfigError, install_excepthook
from ._facade import Daemon
from ._process import log
from ._scoreboard import Scoreboard, SlotState
from ._services import DaemonServices
from ._signal_states import SignalStates
from ._status_updates import StatusUpdates

__all__ = ["DaemonComponent", "fork_process"]

#: The fork the component uses; fault-injection tests may replace it.
fork_process: Callable[[], int] = os.fork

_STATES = (
    "_start",
    "_stop",
    "status",
    "update_status",
    "check_scoreboard",
    "fork",
    "retry",
    "waste_time",
    "babysit",
    "rogues",
    "shutdown",
    "shutdown_escalate",
    "foreign_child",
    "orphaned",
    "sig_CHLD",
    "sig_INT",
    "sig_QUIT",
    "sig_TERM",
    "sig_HUP",
    "sig_USR2",
)


class _Hybrid:
    """A method callable on the class (``DaemonComponent.spawn(...)``) or on
    an instance (``daemon.spawn(...)``), as Perl's ``spawn`` was."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    def __get__(self, obj: object, cls: type) -> Callable[..., Any]:
        return functools.partial(self.func, cls if obj is None else obj)


class DaemonComponent(StatusUpdates, SignalStates, Babysitter):
    """POE::Component::Daemon: detach, logfile, privileges, and a pool of
    pre-forked or post-forked children, as a session on the kernel.

    ``DaemonComponent.spawn(alias='Daemon', detach=True, logfile=...,
    start_children=..., ...)``; every parameter is validated by
    :class:`DaemonConfig` (a pydantic model) and a wrong one is refused with
    a message naming it.
    """

    def __init__(self, config: DaemonConfig, params: dict[str, Any] | None = None) -> None:
        super().__init__(config, params)
        self.services = DaemonServices(self)

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
                self.config = _config(self._params)
                self.max_requests = self.config.requests or 1
        else:
            self = self_or_cls.new(**params)
        inherited_sockets()  # LISTEN_FDS names this pid: read it before any fork
        # Refusals come first, while stderr is still the terminal: systemd
        # env, pidfile check, the logfile's checks.
        self.services.before_detach()
        logfd = self._open_log()
        # With detach, the launching process stays here until the daemon is up.
        self.services.launch_wait()
        self._use_log(logfd)  # and the waiting launcher gets stderr's copy
        self.drop_privs()
        self.detach()
        self.services.after_detach()  # pidfile written and locked
        self.create_session()
        return self

    def _once(self, what: str) -> bool:
        if what in self._done:
            return False
        self._done.add(what)
        return True

    def open_logfile(self) -> bool:
        """Send stdout/stderr to the logfile (``open_logfile``); once."""
        fd = self._open_log()
        if not self._log_pending:
            return False
        self._use_log(fd)
        return True

    def _open_log(self) -> int | None:
        """The first half of ``open_logfile``: open the logfile (safely:
        see _process.open_log_descriptor), once; None without one."""
        cfg = self.config
        self._log_pending = False
        if (cfg.logfile is None and not cfg.verbose) or not self._once("logfile"):
            return None
        self._log_pending = True
        if cfg.logfile is None:
            return None
        fd, self.logfile_created = _process.open_log_descriptor(cfg.logfile)
        return fd

    def _use_log(self, fd: int | None) -> None:
        """The second half: stdout/stderr to it, and kernelish's log lines."""
        if fd is not None:
            _process.log_to(fd)
        # Before the log handler takes sys.stderr: its lines are copied too.
        self.services.logging()
        if self._log_pending:
            self._log_pending = False
            _process.install_log_handler(self.config.verbose)

    def drop_privs(self) -> None:
        """Become ``user``/``group`` for good (``drop_privs``); once."""
        if self._once("drop_privs"):
            cfg = self.config
            user = cfg.user if isinstance(cfg.user, str) else None
            # fd 2 is the logfile open_logfile made; never chown by path.
            hand_over = 2 if self.logfile_created else None
            _process.drop_privs(cfg.uid, cfg.gid, user, hand_over)

    def detach(self) -> None:
        """Fork twice and ``setsid()`` (``detach``); once, and only if asked."""
        if self.config.detach and self._once("detach"):
            _process.detach()

    def create_session(self) -> Session | None:
        """Create the component's session (``create_session``)."""
        self.session = Session.create(object_states=[(self, _STATES)])
        return self.session

    # -- session life ---------------------------------------------------------

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
        if self.is_fork():
            kernel.yield_("check_scoreboard")
        elif not self.is_prefork():
            kernel.yield_("waste_time")
            return
        cfg = self.config
        assert cfg.max_children is not None
        self.children = {}
        self.failed_forks = []
        self.scoreboard = Scoreboard(cfg.max_children + 5)
        self.pending_forks = 0
        _process.load_prctl()
        if self.is_prefork():
            self.startup = True
            self.fork_off(cfg.start_children or 0)
        if cfg.babysit:
            kernel.yield_("babysit")
        kernel.yield_("waste_time")

    def _stop(self, _: HandlerArgs) -> None:
        Daemon._detach(self)
        self.services.stopped()  # pidfile removed
        self._verbose("Server is stopping")

    def waste_time(self, _: HandlerArgs) -> None:
        """Keep the daemon alive; tell others we are the parent, once."""
        if self.is_child:
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
        kernel = poe_kernel
        if isinstance(n, list):
            if len(n) == 1 and self.is_fork():
                # A request in a post-forking parent: fork now, before the
                # select loop can run again.
                kernel.call(kernel.get_active_session(), "fork", n[0])
                return
            for req in n:
                self.pending_forks += 1
                kernel.yield_("fork", req)
            return
        for _ in range(n):
            self.pending_forks += 1
            kernel.yield_("fork")

    def fork(self, _: HandlerArgs) -> None:
        """Fork one child (the ``fork`` state)."""
        kernel, req = _[KERNEL], _[ARG0]
        if self.is_child or self.children is None or self.die:
            return
        if self.pending_forks:
            self.pending_forks -= 1
        cfg = self.config
        assert self.scoreboard is not None and cfg.max_children is not None
        if len(self.children) >= cfg.max_children:
            log.warning(
                "%d: Maximum number of children reached! max_children=%d currently=%d",
                os.getpid(),
                cfg.max_children,
                len(self.children),
            )
            if self.is_prefork():
                return
        slot = self.scoreboard.add("FORK")
        if slot is None:
            log.warning("%d: NO FREE SLOT! You should increase max_children.", os.getpid())
            return
        # The child compares its getppid() with this, not with its own first
        # getppid(): if the parent died before PDEATHSIG was set, they differ.
        self.parent_pid = os.getpid()
        try:
            pid = _lean.fork(fork_process)  # gc.freeze() across the fork
        except OSError as exc:
            self.scoreboard.drop(slot)
            self.fork_failed(exc.errno or 0, exc.strerror or str(exc), req)
            return
        if pid:
            self.children[pid] = slot
            self.born[pid] = time.monotonic()
            kernel.sig_child(pid, "sig_CHLD")
            if self.is_fork():
                _close_sockets(req)
                self._backpressure()
            if not self.pending_forks and self.startup:
                self.startup = False
                kernel.yield_("check_scoreboard")
        else:
            self.become_child(slot, req)

    def fork_failed(self, errnum: int, errstr: str, req: Any) -> None:
        """A fork failed: retry in 1 s if temporary, else shut down."""
        if errnum in (errno.EAGAIN, errno.ECHILD, errno.ENOMEM):
            self._verbose("Recoverable forking problem: %s", errstr)
            self.failed_forks.append(req)
            poe_kernel.delay("retry", 1)
        else:
            log.error("%d: Can't fork: %s; shutting down", os.getpid(), errstr)
            _close_sockets(req)
            poe_kernel.yield_("shutdown")

    def retry(self, _: HandlerArgs) -> None:
        """Retry the forks that failed for a temporary reason."""
        if self.is_child or self.children is None:
            log.warning("%d: We are a child, why are we forking?", os.getpid())
            return
        failed, self.failed_forks = self.failed_forks, []
        if self.is_fork():
            for req in failed:
                self.fork_off([req])
        else:
            self.fork_off(len(failed))

    def become_child(self, slot: int, req: Any) -> None:
        """Turn this process into a child (``become_child``)."""
        kernel = poe_kernel
        if self.config.verbose:  # no formatting work in a quiet child's start
            self._verbose("Created %s", time.ctime())
        Daemon._child = True
        self.is_child = True
        _lean.exit_lean()  # no interpreter teardown at exit
        self.my_slot = slot
        self.pending_forks = 0
        self.failed_forks = []
        _process.die_with_parent()
        self.services.in_child()  # no notify, pidfile lock, control socket
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
        self.children = None
        self.rogue_list = {}
        assert self.scoreboard is not None
        self.scoreboard.write(slot, "fork", pid=os.getpid())
        if os.getppid() != self.parent_pid:  # pragma: no cover - parent died already
            os.kill(os.getpid(), signal.SIGTERM)
        self.inform_others("daemon_child", req)
        if self.is_prefork():
            self.request_n = 0
        elif self.is_fork():
            self.scoreboard.write(slot, "req")

    # -- the scoreboard ---------------------------------------------------------

    def check_scoreboard(self, _: HandlerArgs) -> None:
        """Keep ``min_spare``..``max_spare`` children waiting (pre-forking),
        or pause/resume accepting (post-forking).  The decision is
        :func:`~._policy.plan`'s: spares, ``max_children``, the quick
        re-check after forking, the crash-loop brake."""
        if self.is_child or self.children is None or self.die:
            return
        assert self.scoreboard is not None
        cfg = self.config
        again = _policy.CHECK
        if self.is_prefork():
            assert cfg.min_spare is not None and cfg.max_spare is not None
            assert cfg.max_children is not None
            slots = self.scoreboard.read_all()
            pool = _policy.Pool(
                children={
                    pid: _policy.Child(SlotState(slots[slot]), self.born.get(pid, 0.0))
                    for pid, slot in self.children.items()
                },
                min_spare=cfg.min_spare,
                max_spare=cfg.max_spare,
                max_children=cfg.max_children,
                # Forks waiting for their retry count as under way: otherwise
                # every check during a fork outage adds more, and the retry
                # that works forks them all at once (up to max_children).
                underway=self.pending_forks + len(self.failed_forks),
            )
            decision = _policy.plan(pool, self.brake, time.monotonic())
            if self.brake.died_at_start and not decision.brake.died_at_start:
                log.warning("%d: a new child is ready: the crash-loop brake is off", os.getpid())
            self.brake = decision.brake
            if decision.forks:
                self._verbose("Spawning %d spares", decision.forks)
                self.fork_off(decision.forks)
            for pid in decision.kills:
                self._verbose("Killing spare %d", pid)
                _kill(pid, signal.SIGINT)
            again = decision.again
        elif self.is_fork():
            self._backpressure()
        self.services.status_changed()  # STATUS= if it changed
        kernel = _[KERNEL]
        kernel.delay("check_scoreboard", again)

    def brake_text(self) -> str:
        """The crash-loop brake, in words for ``status`` ('' when off)."""
        return self.brake.describe(time.monotonic())

    # -- status -------------------------------------------------------------------

    def status(self, _: HandlerArgs | None = None) -> str:
        """The human-readable status text (``status``), line for line the
        seed's: class name, mode, children, then the scoreboard."""
        who = "a child" if self.is_child else "the parent"
        lines = [type(self).__name__]
        if self.is_prefork():
            lines.append(f"Pre-forking server, we are {who}")
        elif self.is_fork():
            lines.append(f"Forking server, we are {who}")
        else:
            lines.append("Daemon server")
        if self.children is not None and self.scoreboard is not None:
            kids = self.children
            lines.append(f"{len(kids)} children: {' '.join(str(p) for p in sorted(kids))}")
            doing = self.scoreboard.read_all()
            lines.extend(f"    {pid}: {doing[kids[pid]]}" for pid in sorted(kids))
        text = "\n    ".join(lines) + "\n"
        if self.scoreboard is not None:
            text += self.scoreboard.status()
        return text


def _config(params: dict[str, Any]) -> DaemonConfig:
    try:
        return DaemonConfig(**params)
    except pydantic.ValidationError as exc:
        raise DaemonConfigError.from_validation(exc) from None


def _close_sockets(req: Any) -> None:
    """The parent's copy of a request's socket must not stay open."""
    values = req.values() if isinstance(req, dict) else (req,)
    for value in values:
        if isinstance(value, socket.socket):
            value.close()
