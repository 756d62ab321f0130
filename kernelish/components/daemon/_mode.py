"""Which pool the running Daemon keeps: the one question a component that
runs under the Daemon (``ServerTCP(Daemon=True)``) must ask of it.

A listener under a pre-forking Daemon stays paused in the parent and
accepts in the children (on ``daemon_accept``); under a post-forking one
the parent accepts and hands each connection over with
``Daemon.update_status('req', info)``.  The ``daemon_*`` signals do not
say which, so this asks the component itself.  Kept apart from the
component's internals on purpose: it reads only the facade's link to the
running component and its configuration's ``is_prefork`` / ``is_fork``
(the seed's names).
"""

from __future__ import annotations

from typing import Literal

from ._facade import Daemon

__all__ = ["pool_mode"]

PoolMode = Literal["prefork", "fork", "none"]


def pool_mode() -> PoolMode | None:
    """How the Daemon running in this process pools its children:
    ``'prefork'``, ``'fork'`` (post-forking), ``'none'`` (a daemon without
    children), or None when no Daemon component runs here (kernelish; the
    seed's ``is_prefork`` / ``is_fork`` for code outside the component)."""
    ref = Daemon._component
    component = ref() if ref is not None else None
    if component is None or not Daemon.alias:
        return None
    config = component.config
    if config.is_prefork():
        return "prefork"
    if config.is_fork():
        return "fork"
    return "none"
