"""``update_status``: a child's or a post-forking parent's report of what
it is doing (the seed's ``update_status``), for each of the three modes.
"""

from __future__ import annotations

import os
from typing import Any

from kernelish import ARG0, ARG1, HandlerArgs, poe_kernel

from ._process import log
from ._state import DaemonState

__all__ = ["StatusUpdates"]


class StatusUpdates(DaemonState):
    """The ``update_status`` state, mixed into :class:`DaemonComponent`."""

    def update_status(self, _: HandlerArgs) -> Any:
        """User code tells us its new status (``update_status``)."""
        status, parm = _[ARG0], _[ARG1]
        if self.is_child and self.my_slot is None:
            return None  # shutting down: the slot says 'e' (exiting) now
        if self.is_prefork():
            return self._update_status_prefork(status)
        if self.is_fork():
            if self.is_child:
                return self._update_status_fork_child(status)
            return self._update_status_fork_parent(status, parm)
        log.warning("%d: Non-forking server doesn't need to update status", os.getpid())
        return None

    def _update_status_prefork(self, status: str) -> None:
        if not self.is_child:
            log.warning(
                "%d: Only child processes should update their status (%s)", os.getpid(), status
            )
            return
        assert self.scoreboard is not None and self.my_slot is not None
        slot = self.my_slot
        current = self.scoreboard.read(slot)
        if status in ("wait", "done"):
            self.scoreboard.write(slot, "wait")
            if self.request_n >= self.max_requests:
                self._verbose("Handled %d requests, shutting down", self.request_n)
                poe_kernel.yield_("shutdown")
            elif current != "w":
                self.inform_others("daemon_accept")
            return
        if status == "long" and current == "r":
            self.scoreboard.write(slot, "long")
            return
        if status in ("req", "long"):
            self.request_n += 1
            self.scoreboard.write(slot, status)
            return
        log.warning(
            "%d: Don't know what to do for %r! Maybe you meant 'long', 'wait', 'done' or 'req'?",
            os.getpid(),
            status,
        )

    def _update_status_fork_child(self, status: str) -> None:
        assert self.scoreboard is not None and self.my_slot is not None
        if status in ("wait", "done"):
            self.scoreboard.write(self.my_slot, "wait")
            poe_kernel.yield_("shutdown")
        elif status == "long":
            self.scoreboard.write(self.my_slot, "long")
        else:
            log.warning(
                "%d: Don't know what to do for %r! Maybe you meant 'long', 'wait' or 'done'?",
                os.getpid(),
                status,
            )

    def _update_status_fork_parent(self, status: str, parm: Any) -> None:
        if status == "req":
            self.fork_off([parm])
        else:
            log.warning(
                "%d: Don't know what to do for %r! Maybe you meant 'req'?", os.getpid(), status
            )
