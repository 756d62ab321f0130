"""The three ways a Daemon runs, decided once from its configuration.

The seed asked ``is_prefork()`` / ``is_fork()`` wherever the modes differ --
twenty-five times in the first port, and the mode's name was spelt in three
places (``status``, systemd's ``STATUS=``, the control socket's answer).
:class:`Mode` is decided once, when the configuration is; what differs
between the forking modes lives in their pools (:mod:`._pool`,
:mod:`._prefork`) and their children's roles (:mod:`._child`), and what
remains here is the words and the signals a post-forking daemon delivers at
once.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ._config import DaemonSettings

__all__ = ["Mode", "PoolMode", "pool_mode"]


class Mode(enum.Enum):
    """Non-forking, pre-forking or post-forking (the seed's ``is_prefork`` /
    ``is_fork``); the value is the mode as the control socket reports it."""

    DAEMON = "daemon"
    PREFORK = "pre-forking"
    POSTFORK = "forking"

    @classmethod
    def of(cls, config: DaemonSettings) -> Mode:
        """The mode ``config`` selects: ``start_children`` pre-forks,
        ``max_children`` alone post-forks, neither is a plain daemon."""
        if config.is_prefork():
            return cls.PREFORK
        if config.is_fork():
            return cls.POSTFORK
        return cls.DAEMON

    @property
    def title(self) -> str:
        """The mode in the status text: ``'Pre-forking server'``, ..."""
        return _TITLES[self]

    @property
    def forks(self) -> bool:
        """Whether this mode keeps a pool of children."""
        return self is not Mode.DAEMON

    @property
    def expedited(self) -> frozenset[str]:
        """The signals ``inform_others`` delivers at once, not through the
        queue: in a post-forking daemon, ``daemon_child`` (the child's request
        is waiting) and ``daemon_pause`` / ``daemon_accept`` (before the
        parent accepts again)."""
        return _EXPEDITED if self is Mode.POSTFORK else frozenset()


_TITLES = {
    Mode.DAEMON: "Daemon server",
    Mode.PREFORK: "Pre-forking server",
    Mode.POSTFORK: "Forking server",
}

_EXPEDITED = frozenset({"daemon_child", "daemon_pause", "daemon_accept"})


PoolMode = Literal["prefork", "fork", "none"]


def pool_mode() -> PoolMode | None:
    """How the Daemon running in this process pools its children:
    ``'prefork'``, ``'fork'`` (post-forking), ``'none'`` (a daemon without
    children), or None when no Daemon component runs here -- the one
    question a component running under the Daemon (``ServerTCP(Daemon=True)``)
    must ask of it: a listener under a pre-forking Daemon stays paused in the
    parent and accepts in the children; under a post-forking one the parent
    accepts and hands each connection over (kernelish; the seed's
    ``is_prefork`` / ``is_fork`` for code outside the component)."""
    from ._facade import Daemon

    ref = Daemon._component
    component = ref() if ref is not None else None
    if component is None or not Daemon.alias:
        return None
    return _POOL_MODES[component.mode]


_POOL_MODES: dict[Mode, PoolMode] = {
    Mode.PREFORK: "prefork",
    Mode.POSTFORK: "fork",
    Mode.DAEMON: "none",
}
