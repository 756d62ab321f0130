"""The post-forking pool: a child per request, at most ``max_children``.

``update_status('req', info)`` in the parent forks at once -- a ``call``, not
a post: the child has handled ``daemon_child`` before the parent's select
loop can run again -- and the parent closes its copy of every socket in
``info``.  Backpressure is synchronous: the fork that reaches
``max_children`` delivers ``daemon_pause`` before ``update_status`` returns
(so the listener pauses before the next accept), and the exit that makes
room delivers ``daemon_accept``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._child import PostforkChild
from ._policy import CHECK
from ._pool import Pool, close_sockets
from ._process import log
from ._scoreboard import SlotState

if TYPE_CHECKING:
    from kernelish import Kernel

    from ._config import DaemonSettings

__all__ = ["PostforkPool"]


class PostforkPool(Pool):
    """A child forked for each request (the seed's forking server)."""

    refuses_at_max = False
    role = PostforkChild

    def __init__(
        self,
        config: DaemonSettings,
        kernel: Kernel,
        fork: Callable[[], int],
        inform: Callable[..., None],
    ) -> None:
        super().__init__(config, config.max_children or 0, kernel, fork, inform)
        #: ``daemon_pause`` was said and ``daemon_accept`` not yet.
        self.paused = False

    def start(self) -> None:
        self.kernel.yield_("check_scoreboard")

    def fork_off(self, n: int | list[Any]) -> None:
        if isinstance(n, list) and len(n) == 1:
            # A request: fork now, before the select loop can run again.
            kernel = self.kernel
            kernel.call(kernel.get_active_session(), "fork", n[0])
            return
        super().fork_off(n)

    def forked(self, req: Any) -> None:
        close_sockets(req)
        self.backpressure()

    def check(self) -> float:
        self.backpressure()
        return CHECK

    def replace(self, pid: int, state: SlotState, wstatus: int | None) -> None:
        self.backpressure()

    def requeue(self, failed: list[Any]) -> None:
        for req in failed:
            self.fork_off([req])

    def update_status(self, status: Any, parm: Any) -> None:
        if status == "req":
            self.fork_off([parm])
        else:
            log.warning(
                "%d: Don't know what to do for %r! Maybe you meant 'req'?", os.getpid(), status
            )

    def backpressure(self) -> None:
        """``daemon_pause`` at ``max_children``, ``daemon_accept`` below it."""
        if len(self.children) >= self.max_children:
            if not self.paused:
                self.paused = True
                self._inform("daemon_pause")
        elif self.paused:
            self.paused = False
            self._inform("daemon_accept")
