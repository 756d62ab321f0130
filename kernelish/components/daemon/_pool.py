"""The parent's pool of children: forks, exits, retries -- the forking modes' common part.

Discussion
----------
The seed kept its children in its ``$self`` hash beside everything else
(``children``, ``pending forks``, ``failed forks``, the scoreboard), and
every state asked ``is_prefork``/``is_fork`` and whether it was a child
before touching them.  Here they are one object, :class:`Pool`, that exists
only in the parent of a forking Daemon, from its ``_start`` on: the Daemon's
states call it when it is there, and a forked child drops it (becoming a
:class:`~._child.ChildRole` instead).  What differs between the modes is in
its two subclasses: :class:`~._prefork.PreforkPool` (spares, the crash-loop
brake: :func:`~._policy.plan` decides) and
:class:`~._postfork.PostforkPool` (a fork per request, backpressure).

A fork, from the parent's side: :meth:`Pool.fork_off` counts the forks
*pending* and queues a ``fork`` event for each; the ``fork`` state calls
:meth:`Pool.fork_one`, which reserves a scoreboard slot (``F``), forks, and
in the parent records the child (pid -> slot, when it was born) and watches
it with ``sig_child``.  A fork that fails for a temporary reason (EAGAIN,
ENOMEM) is *failed* and retried a second later (:meth:`Pool.retry`); any
other failure shuts the Daemon down.  When a child is reaped,
:meth:`Pool.child_exited` frees its slot and lets the mode replace it.

The pool's methods run inside the Daemon session's states, and post to them
by name (``fork``, ``retry``, ``check_scoreboard``, ``shutdown``).
"""

from __future__ import annotations

import abc
import errno
import functools
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from . import _lean
from ._babysit import Babysitter
from ._policy import SPARE
from ._process import kill, log, note
from ._scoreboard import Scoreboard, SlotState

if TYPE_CHECKING:
    from kernelish import Kernel

    from ._child import ChildRole
    from ._config import DaemonSettings

__all__ = ["BUSY", "Pool", "close_sockets"]

#: Slot states of a child that serves a request (the others are spares: idle).
BUSY = frozenset({SlotState.REQ, SlotState.LONG})

#: Fork errors worth a retry a second later (the seed's list).
_TEMPORARY = frozenset({errno.EAGAIN, errno.ECHILD, errno.ENOMEM})


class Pool(abc.ABC):
    """The children of a forking Daemon's parent and the scoreboard they share.

    ``fork`` is the function that forks (the component's ``fork_process``,
    which fault-injection tests replace); ``inform`` is the component's
    ``inform_others``.
    """

    #: Whether a fork at ``max_children`` is refused (pre-forking) or made
    #: with a warning (post-forking, the seed's: a request waits for it).
    refuses_at_max: ClassVar[bool] = True
    #: What a child of this pool becomes.
    role: ClassVar[type[ChildRole]]

    def __init__(
        self,
        config: DaemonSettings,
        max_children: int,
        kernel: Kernel,
        fork: Callable[[], int],
        inform: Callable[..., None],
    ) -> None:
        self.config = config
        self.kernel = kernel
        self.max_children = max_children
        #: ``max_children + 5`` slots, as the seed's.
        self.scoreboard = Scoreboard.for_children(max_children)
        #: Live children: pid -> scoreboard slot.
        self.children: dict[int, int] = {}
        #: When each child was forked (``time.monotonic()``).
        self.born: dict[int, float] = {}
        #: Forks queued as ``fork`` events and not made yet.
        self.pending = 0
        #: The requests (None in pre-forking) of forks that failed for a
        #: temporary reason, to be retried.
        self.failed: list[Any] = []
        #: Requests a child serves before it leaves.
        self.max_requests = 1
        self.sitter = (
            Babysitter(self.children, kernel, config.babysit, config.rogue_cpu, config.verbose)
            if config.babysit
            else None
        )
        self._fork = fork
        self._inform = inform
        #: A child's way to end itself (its role's ``shutdown``).
        self._shutdown = functools.partial(kernel.yield_, "shutdown")

    # -- what the modes decide ---------------------------------------------------------

    @abc.abstractmethod
    def start(self) -> None:
        """The pool's first work, in the Daemon's ``_start``."""

    @abc.abstractmethod
    def check(self) -> float:
        """One ``check_scoreboard``; seconds until the next."""

    @abc.abstractmethod
    def update_status(self, status: Any, parm: Any) -> None:
        """``update_status`` called in the parent."""

    @abc.abstractmethod
    def requeue(self, failed: list[Any]) -> None:
        """Fork again for the requests of failed forks."""

    @abc.abstractmethod
    def forked(self, req: Any) -> None:
        """A child was forked for ``req`` (in the parent)."""

    @abc.abstractmethod
    def replace(self, pid: int, state: SlotState, wstatus: int | None) -> None:
        """A child exited in ``state`` while the Daemon runs on."""

    def brake_text(self) -> str:
        """The crash-loop brake in words ('' when off, or in a mode without one)."""
        return ""

    # -- forking -------------------------------------------------------------------------

    def fork_off(self, n: int | list[Any]) -> None:
        """Queue ``n`` forks, or one per request in a list (``fork_off``)."""
        kernel = self.kernel
        if isinstance(n, list):
            for req in n:
                self.pending += 1
                kernel.yield_("fork", req)
            return
        for _ in range(n):
            self.pending += 1
            kernel.yield_("fork")

    def fork_one(self, req: Any) -> ChildRole | None:
        """Fork one child for ``req``: in the child, what it is now (its
        :class:`~._child.ChildRole`); in the parent (or when no child could be
        forked), None."""
        if self.pending:
            self.pending -= 1
        if len(self.children) >= self.max_children:
            log.warning(
                "%d: Maximum number of children reached! max_children=%d currently=%d",
                os.getpid(),
                self.max_children,
                len(self.children),
            )
            if self.refuses_at_max:
                return None
        slot = self.scoreboard.add(SlotState.FORK)
        if slot is None:
            log.warning("%d: NO FREE SLOT! You should increase max_children.", os.getpid())
            close_sockets(req)  # a request nobody will serve: its client hears so
            return None
        # The child's role is made here, before the fork: the child finds it
        # made and runs none of that code (each function a child runs first
        # writes to its code's pages).  Its parent is this pid: the child
        # compares its getppid() with it, not with its own first getppid(),
        # since if the parent died before PDEATHSIG was set, they differ.
        role = self.role(
            self.scoreboard, slot, os.getpid(), self._inform, self._shutdown,
            self.config.verbose, self.max_requests,
        )  # fmt: skip
        try:
            pid = _lean.fork(self._fork)  # gc.freeze() across the fork
        except OSError as exc:
            self.scoreboard.drop(slot)
            self.fork_failed(exc.errno or 0, exc.strerror or str(exc), req)
            return None
        if not pid:
            return role
        self.children[pid] = slot
        self.born[pid] = time.monotonic()
        self.kernel.sig_child(pid, "sig_CHLD")
        self.forked(req)
        return None

    def fork_failed(self, errnum: int, errstr: str, req: Any) -> None:
        """A fork failed (``fork_failed``): retry in 1 s if the reason is
        temporary, else shut down."""
        if errnum in _TEMPORARY:
            note(self.config.verbose, "Recoverable forking problem: %s", errstr)
            self.failed.append(req)
            self.kernel.delay("retry", 1)
        else:
            log.error("%d: Can't fork: %s; shutting down", os.getpid(), errstr)
            close_sockets(req)
            self.kernel.yield_("shutdown")

    def retry(self) -> None:
        """Fork again for every fork that failed for a temporary reason."""
        failed, self.failed = self.failed, []
        self.requeue(failed)

    # -- children going ------------------------------------------------------------------

    def child_exited(self, pid: int, wstatus: int | None, fake: bool, dying: bool) -> bool:
        """``pid`` was reaped (or is gone: ``fake``): free its slot and, unless
        the Daemon is ``dying``, let the mode replace it.  False if ``pid`` is
        not one of ours (or was already seen: our children arrive twice,
        from ``sig_child`` and from the CHLD signal)."""
        slot = self.children.pop(pid, None)
        if slot is None:
            if fake:
                log.warning("%d: Needless fake CHLD for %s", os.getpid(), pid)
            return False
        note(self.config.verbose, "SIGCHLD pid=%s: child %s", pid, "is gone" if fake else "exited")
        state = self.scoreboard.state(slot)
        self.born.pop(pid, None)
        self.scoreboard.drop(slot)
        self.kernel.sig_child(pid)
        if self.sitter is not None:
            self.sitter.forget(pid)
        if not dying:
            self.replace(pid, state, wstatus)
        return True

    def signal_all(self, sig: int) -> None:
        """Send ``sig`` to every child."""
        for pid in list(self.children):
            kill(pid, sig)

    def kill_all(self, fast: bool, timeout: float) -> None:
        """KILL every child left: at once after QUIT (``fast``), or once
        they ignored TERM for ``timeout`` seconds."""
        for pid in list(self.children):
            if fast:
                log.warning("%d: fast stop (SIGQUIT): sending KILL to child %d", os.getpid(), pid)
            else:
                log.warning(
                    "%d: child %d ignored TERM for %ss; sending KILL", os.getpid(), pid, timeout
                )
            kill(pid, signal.SIGKILL)

    # -- words ---------------------------------------------------------------------------

    def status_lines(self) -> list[str]:
        """The children in the seed's ``status`` text: pids, then each one's slot."""
        kids = self.children
        doing = self.scoreboard.read_all()
        return [
            f"{len(kids)} children: {' '.join(str(p) for p in sorted(kids))}",
            *(f"    {pid}: {doing[kids[pid]]}" for pid in sorted(kids)),
        ]

    def census(self) -> str:
        """How many children, idle and busy: systemd's ``STATUS=`` line."""
        states = self.scoreboard.states()
        doing = [states[slot] for slot in self.children.values()]
        idle = sum(s in SPARE for s in doing)
        busy = sum(s in BUSY for s in doing)
        return f"{len(doing)} children, {idle} idle, {busy} busy"


def close_sockets(req: Any) -> None:
    """Close our copy of every socket in ``req`` (a dict of them, or one):
    the parent's, once a child has the request; a child's, of a request
    that is not its own; anyone's, of a request nobody will serve."""
    values = req.values() if isinstance(req, dict) else (req,)
    for value in values:
        if isinstance(value, socket.socket):
            value.close()
