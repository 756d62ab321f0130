"""What the Daemon component knows, and the helpers all its states share.

:class:`DaemonState` is the base of the component and of its state mixins
(:class:`~._babysit.Babysitter`, :class:`~._signal_states.SignalStates`,
:class:`~._status_updates.StatusUpdates`): the configuration, the
children and their slots, the flags of the seed's ``$self`` hash, and the
seed's small helpers ``is_prefork``, ``is_fork``, ``inform_others`` and
``expedite_signal``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from kernelish import Session, poe_kernel
from kernelish._signals import SessionWatcher

from ._policy import Brake
from ._process import log

if TYPE_CHECKING:
    from ._config import DaemonConfig
    from ._scoreboard import Scoreboard
    from ._services import DaemonServices

__all__ = ["DaemonState"]


class DaemonState:
    """The component's state (the seed's ``$self``) and shared helpers."""

    services: DaemonServices

    def __init__(self, config: DaemonConfig, params: dict[str, Any] | None = None) -> None:
        self.config = config
        self._params = dict(params or {})
        self.session: Session | None = None
        self.scoreboard: Scoreboard | None = None
        self.children: dict[int, int] | None = None
        self.foreign_children: set[int] = set()
        self.failed_forks: list[Any] = []
        self.pending_forks = 0
        self.max_requests = config.requests or 1
        self.request_n = 0
        self.is_child = False
        self.my_slot: int | None = None
        self.parent_pid: int | None = None
        self.startup = False
        self.die = False
        #: QUIT asked for a fast stop: children get KILL at once.
        self.fast_stop = False
        self.paused = False
        self.told_parent = False
        self.rogue_list: dict[int, int] = {}
        #: When each pool child was forked (time.monotonic()).
        self.born: dict[int, float] = {}
        #: The crash-loop brake (pre-forking; see _policy).
        self.brake = Brake()
        self._done: set[str] = set()
        #: open_logfile created the logfile (so drop_privs may hand it over)
        self.logfile_created = False
        self._log_pending = False

    def is_prefork(self) -> bool:
        """Pre-forking: ``start_children`` is set (``is_prefork``)."""
        return self.config.is_prefork()

    def is_fork(self) -> bool:
        """Post-forking: ``max_children`` without ``start_children``."""
        return self.config.is_fork()

    def _verbose(self, fmt: str, *args: Any) -> None:
        if self.config.verbose:
            log.info("%d: " + fmt, os.getpid(), *args)

    def expedite_signal(self, name: str, *args: Any) -> None:
        """Call every watcher of ``name`` now, not through the queue
        (``expedite_signal``): the parent's loop must not run in between."""
        kernel = poe_kernel
        for session, event in kernel.signal_watchers(name).items():
            kernel.call(session, event, name, *args)
        for func in kernel.events.listeners(name):
            if type(func) is not SessionWatcher:
                func(name, *args)

    def inform_others(self, name: str, *args: Any) -> None:
        """Broadcast one of the ``daemon_*`` signals (``inform_others``).

        ``daemon_child`` in a post-forked child, and ``daemon_pause`` /
        ``daemon_accept`` in a post-forking parent, are expedited.
        """
        if self.is_fork() and name in ("daemon_child", "daemon_pause", "daemon_accept"):
            self.expedite_signal(name, *args)
        else:
            poe_kernel.signal(poe_kernel, name, *args)

    def _backpressure(self) -> None:
        assert self.children is not None and self.config.max_children is not None
        if len(self.children) >= self.config.max_children:
            if not self.paused:
                self.paused = True
                self.inform_others("daemon_pause")
        elif self.paused:
            self.paused = False
            self.inform_others("daemon_accept")

    def brake_text(self) -> str:  # pragma: no cover - the component's
        """The crash-loop brake, in words for ``status`` ('' when off)."""
        raise NotImplementedError

    def fork_off(self, n: int | list[Any]) -> None:  # pragma: no cover - the component's
        """Fork ``n`` children, or one per request in a list."""
        raise NotImplementedError
