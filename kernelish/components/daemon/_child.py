"""A forked child's own part of the Daemon: its slot, its parent, its requests.

After a fork the child drops the parent's :class:`~._pool.Pool` and keeps a
:class:`ChildRole`: the scoreboard slot it writes (and only that one), the
pid of the parent it must not outlive, and what it does on
``update_status``.  The role exists only in a child, so nothing in it can be
missing:

* :class:`PreforkChild` serves up to ``requests`` requests: ``'req'`` and
  ``'long'`` count one (``'long'`` after ``'req'`` is the same request),
  ``'wait'``/``'done'`` sends ``daemon_accept`` -- or, past the quota,
  ``shutdown``;
* :class:`PostforkChild` serves the request it was forked for: its slot is
  ``r`` from its start, before ``daemon_child`` (so a ``'long'`` said there
  holds), ``'long'`` marks it long, and ``'done'`` ends the child.

Under Python's development mode (``python -X dev``) a child checks each of
its moves against the slot lifecycle (:meth:`SlotState.allows`) and warns
(``RuntimeWarning``) on one outside it -- a second ``'req'`` without its
``'done'``, say; the seed, and kernelish without ``-X dev``, count it and
carry on.
"""

from __future__ import annotations

import abc
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

from ._process import log, note
from ._scoreboard import Scoreboard, SlotState

__all__ = ["CHECK_TRANSITIONS", "ChildRole", "PostforkChild", "PreforkChild"]

#: Check each move of the child's slot against the lifecycle (``-X dev``).
CHECK_TRANSITIONS = sys.flags.dev_mode

_WAIT, _REQ, _LONG, _EXIT = SlotState.WAIT, SlotState.REQ, SlotState.LONG, SlotState.EXIT


class ChildRole(abc.ABC):
    """What a forked child is: the slot it writes and the parent it came from.

    ``inform`` is the component's ``inform_others``; ``shutdown`` queues the
    Daemon's ``shutdown`` (the child has served its quota).  (The path from
    ``fork()`` to ``daemon_child`` runs as few functions as it can: each one
    run for the first time in a child writes to the pages of its code.)
    """

    #: The state the slot takes as the child starts, before ``daemon_child``.
    begins_in: ClassVar[SlotState] = SlotState.CHILD

    def __init__(
        self,
        scoreboard: Scoreboard,
        slot: int,
        parent_pid: int,
        inform: Callable[..., None],
        shutdown: Callable[[], None],
        verbose: bool = False,
        max_requests: int = 1,
    ) -> None:
        self.scoreboard = scoreboard
        self.slot = slot
        #: The process that forked us (``getppid()`` differs once it died).
        self.parent_pid = parent_pid
        self.inform = inform
        self.shutdown = shutdown
        self.verbose = verbose
        #: Requests the child serves before it leaves.
        self.max_requests = max_requests
        #: Requests begun (``'req'``, or ``'long'`` not following a ``'req'``).
        self.served = 0
        #: The child is shutting down: its slot says ``e``, updates are ignored.
        self.leaving = False

    def started(self) -> None:
        """The child runs: its slot says :attr:`begins_in`, with its pid."""
        self.scoreboard.write(self.slot, self.begins_in, pid=os.getpid())

    @abc.abstractmethod
    def update_status(self, status: Any) -> None:
        """User code's ``update_status(status)`` in this child (ignored once
        it is leaving)."""

    def leave(self) -> None:
        """The child shuts down: its slot says ``e`` (exiting)."""
        if not self.leaving:
            self.leaving = True
            self.scoreboard.write(self.slot, _EXIT)

    def _check(self, was: SlotState, new: SlotState, status: Any) -> None:
        """Warn if ``was -> new`` is outside the slot lifecycle (``-X dev``)."""
        if not was.allows(new):
            warnings.warn(
                f"update_status({status!r}) moves scoreboard slot {self.slot} from "
                f"{was.value!r} ({was.label}) to {new.value!r} ({new.label}), outside "
                "the slot lifecycle (a request without its 'done'?)",
                RuntimeWarning,
                stacklevel=3,
            )


class PreforkChild(ChildRole):
    """A pre-forked child: serves up to ``max_requests`` requests."""

    def update_status(self, status: Any) -> None:
        if self.leaving:
            return
        board, slot = self.scoreboard, self.slot
        current = board.state(slot)
        if status in ("wait", "done"):
            new = _WAIT
        elif status == "long" and current is _REQ:
            new = _LONG  # the same request, turned out long
        elif status in ("req", "long"):
            self.served += 1
            new = _REQ if status == "req" else _LONG
        else:
            log.warning(
                "%d: Don't know what to do for %r! Maybe you meant 'long', 'wait', 'done' "
                "or 'req'?",
                os.getpid(),
                status,
            )
            return
        if CHECK_TRANSITIONS:
            self._check(current, new, status)
        board.move(slot, current, new)
        if new is _WAIT:
            if self.served >= self.max_requests:
                note(self.verbose, "Handled %d requests, shutting down", self.served)
                self.shutdown()
            elif current is not _WAIT:
                self.inform("daemon_accept")


class PostforkChild(ChildRole):
    """A post-forked child: serves the one request it was forked for."""

    begins_in = _REQ

    def update_status(self, status: Any) -> None:
        if self.leaving:
            return
        if status in ("wait", "done"):
            new = _WAIT
        elif status == "long":
            new = _LONG
        else:
            log.warning(
                "%d: Don't know what to do for %r! Maybe you meant 'long', 'wait' or 'done'?",
                os.getpid(),
                status,
            )
            return
        if CHECK_TRANSITIONS:
            self._check(self.scoreboard.state(self.slot), new, status)
        self.scoreboard.write(self.slot, new)
        if new is _WAIT:
            self.shutdown()
