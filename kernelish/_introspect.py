"""A read-only view of a kernel's tables: what introspection is built on.

:mod:`kernelish.peek` (POE::API::Peek) and the Daemon's ``peek()`` dump read
the kernel through :class:`KernelView` only, never its private fields: the
view is the one place that knows where each table lives, and it hands out
copies and counts, never the tables themselves.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ._session import Lifecycle, Node, Session

if TYPE_CHECKING:
    from ._children import ChildReaper
    from ._dispatch import Dispatcher
    from ._event import Event
    from ._kernel import Kernel
    from ._queue import EventQueue
    from ._signals import SignalHub
    from ._watchers import Watchers

__all__ = ["KernelView"]


class KernelView:
    """Read-only questions about one kernel (``kernel.introspection``)."""

    __slots__ = ("_core", "_io", "_kernel", "_queue", "_reaper", "_signals")

    def __init__(
        self,
        kernel: Kernel,
        core: Dispatcher,
        queue: EventQueue,
        io: Watchers,
        signals: SignalHub,
        reaper: ChildReaper,
    ) -> None:
        self._kernel = kernel
        self._core = core
        self._queue = queue
        self._io = io
        self._signals = signals
        self._reaper = reaper

    # -- the kernel -------------------------------------------------------------

    def alive(self) -> bool:
        """Whether the kernel pseudo-session is alive (``run()`` would run)."""
        return self._core.alive

    def loop_name(self) -> str:
        """The selector class in use."""
        return type(self._io.selector).__name__

    def epoch_offset(self) -> float:
        """Add to a queue priority (kernel clock) for a wall-clock epoch."""
        return time.time() - self._core.clock()

    def wakeup_fd(self) -> int:
        """The read end of the signal wakeup pipe (a new one after a fork)."""
        return self._signals.wakeup.r

    def active_signal(self) -> str | None:
        """The signal whose watchers run now, or None."""
        return self._core.active_signal

    # -- the queue -----------------------------------------------------------------

    def next_due(self) -> float | None:
        """The due time of the next queued event on the kernel's own clock
        (a manual clock's test jumps to it), or None."""
        return self._queue.head_priority()

    def queued(self) -> list[Event]:
        """The live queued events, in dispatch order (a copy)."""
        return list(self._queue)

    # -- sessions ---------------------------------------------------------------

    def sessions(self) -> list[Session]:
        """The live sessions (not the kernel), oldest first."""
        return list(self._core.table.by_id.values())

    def resolve(self, dest: Any) -> Node | None:
        """A session (or the kernel) by session, ID or alias, or None."""
        return self._kernel.alias_resolve(dest)

    def alias_owner(self, name: str) -> Session | None:
        """The session that holds alias ``name``."""
        return self._core.table.aliases.get(name)

    def aliases_of(self, node: Node) -> list[str]:
        """A session's aliases, sorted."""
        return sorted(node._aliases)

    def states_of(self, node: Node) -> list[str]:
        """A session's state names, sorted."""
        return sorted(node._states)

    def refcount(self, node: Node) -> int:
        """A session's reference count, by POE's kinds (POE-SEMANTICS 3.1)."""
        return node._refs + (node._to > 0) + (node._from > 0)

    def extrefs_of(self, node: Node) -> dict[str, int]:
        """A session's extra-reference tags and their counts."""
        return dict(node._extrefs)

    def handles_of(self, node: Node) -> int:
        """Distinct fds a session watches (paused too)."""
        return len(node._fds)

    def children_of(self, node: Node) -> list[Session]:
        """A session's child sessions."""
        return list(node._children)

    def parent_of(self, node: Node) -> Node | None:
        """A session's parent (the kernel for top-level sessions)."""
        return node._parent

    def pids_of(self, node: Node) -> int:
        """Child processes a session waits for (``sig_child``)."""
        return len(node._pids)

    def signals_of(self, node: Node) -> dict[str, str]:
        """``{signal name: event}`` of a session's signal watchers."""
        return {name: w.event for name, w in node._sig_watchers.items()}

    def events_to(self, node: Node) -> int:
        """Queued events addressed to a session (its "to" count)."""
        return node._to

    def events_from(self, node: Node) -> int:
        """Queued events a session sent to others (its "from" count)."""
        return node._from

    def is_alive(self, node: Node) -> bool:
        """Whether a session is alive."""
        return node._lifecycle is Lifecycle.ALIVE

    # -- handles and signals ------------------------------------------------------

    def handle_count(self) -> int:
        """Distinct fds watched in the process."""
        return len(self._io)

    def is_watched(self, handle: Any, mode: int) -> bool:
        """Whether ``handle`` is watched in ``mode`` (0 read, 1 write)."""
        return self._io.is_watched(handle, mode)

    def signal_watchers(self, name: str) -> dict[Node, str]:
        """``{session: event}`` for every live watcher of ``name``."""
        return self._kernel.signal_watchers(name)

    def watched_pids(self) -> int:
        """Child pids watched with ``sig_child`` in the process."""
        return self._reaper.watched_pids()

    def caught_signals(self) -> frozenset[int]:
        """OS signal numbers the kernel catches now."""
        return self._signals.caught()
