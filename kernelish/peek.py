"""Introspection of a running kernel: a port of POE::API::Peek (2.20).

``api = Peek(); api.event_queue_dump()`` reads like
``my $api = POE::API::Peek->new; $api->event_queue_dump``.  Every "session"
argument takes a session, an ID or an alias, and defaults to the active
session.  The Daemon component's ``peek()`` dump is built on this.
"""

from __future__ import annotations

import time
from typing import Any, TypedDict

from ._event import EV_DEST, EV_ID, EV_NAME, EV_PRIORITY, EV_SOURCE, EV_TYPE, EventType
from ._kernel import Kernel, poe_kernel
from ._session import Session, _Node
from ._signals import SignalClass, signal_type

__all__ = ["Peek", "QueueItem"]


class QueueItem(TypedDict):
    """One entry of :meth:`Peek.event_queue_dump`."""

    ID: int
    index: int
    priority: float
    event: str
    source: _Node
    destination: _Node
    type: str


class Peek:
    """Read-only views of the kernel's tables (port of POE::API::Peek)."""

    def __init__(self, kernel: Kernel | None = None) -> None:
        self.kernel = kernel if kernel is not None else poe_kernel

    def _session(self, session: Any = None) -> _Node:
        if session is None:
            return self.kernel.get_active_session()
        node = self.kernel._resolve(session)
        if node is None:
            raise LookupError(f"no such session: {session!r}")
        return node

    # -- the kernel ---------------------------------------------------------

    def id(self) -> str:
        """The kernel's ID string."""
        return self.kernel.ID

    def is_kernel_running(self) -> bool:
        """Whether the kernel has sessions to run (Peek's always said 1)."""
        return self.kernel._kernel_alive

    def active_event(self) -> str | None:
        """The event being handled now, or None."""
        return self.kernel.get_active_event()

    def current_session(self) -> _Node:
        """The active session (the kernel outside handlers)."""
        return self.kernel.get_active_session()

    def which_loop(self) -> str:
        """The event loop in use: the ``selectors`` class's name."""
        return type(self.kernel._selector).__name__

    # -- the queue ----------------------------------------------------------

    def event_queue_dump(self) -> list[QueueItem]:
        """Every queued event in dispatch order, with ID, index, priority (due
        epoch), event, source, destination and type."""
        offset = time.time() - self.kernel._clock()
        return [
            QueueItem(
                ID=event[EV_ID],
                index=index,
                priority=event[EV_PRIORITY] + offset,
                event=event[EV_NAME],
                source=event[EV_SOURCE],
                destination=event[EV_DEST],
                type=_type_name(event[EV_TYPE]),
            )
            for index, event in enumerate(self.kernel._queue)
        ]

    def event_count_to(self, session: Any = None) -> int:
        """Queued events addressed to a session."""
        node = self._session(session)
        return sum(1 for e in self.kernel._queue if e[EV_DEST] is node)

    def event_count_from(self, session: Any = None) -> int:
        """Queued events a session sent to *other* sessions."""
        node = self._session(session)
        return sum(1 for e in self.kernel._queue if e[EV_SOURCE] is node and e[EV_DEST] is not node)

    def event_list(self) -> dict[int, list[str]]:
        """``{session ID: sorted state names}`` for every user session."""
        return {sid: sorted(s._states) for sid, s in self.kernel._sessions.items()}

    # -- sessions -------------------------------------------------------------

    def session_list(self) -> list[_Node]:
        """Every session, the kernel first (as Peek does on POE >= 1.350)."""
        kernel = self.kernel
        return ([kernel] if kernel._kernel_alive else []) + list(kernel._sessions.values())

    def session_count(self) -> int:
        """Number of sessions, the kernel included."""
        return len(self.session_list())

    def resolve_alias(self, name: str) -> Session | None:
        """The session that holds alias ``name``."""
        return self.kernel._alias_table.get(name)

    def resolve_session_to_id(self, session: Any = None) -> int | str | None:
        """A session's ID."""
        return self.kernel.ID_session_to_id(self._session(session))

    def session_alias_list(self, session: Any = None) -> list[str]:
        """A session's aliases, sorted."""
        return sorted(self._session(session)._aliases)

    def session_alias_count(self, session: Any = None) -> int:
        """How many aliases a session has."""
        return len(self._session(session)._aliases)

    def session_event_list(self, session: Any = None) -> list[str]:
        """A session's state names, sorted."""
        return sorted(self._session(session)._states)

    def session_id_loggable(self, session: Any = None) -> str:
        """``session 2 (Daemon)``, or ``session <kernel ID>`` for the kernel."""
        node = self._session(session)
        if node is self.kernel:
            return f"session {self.kernel.ID}"
        aliases = sorted(node._aliases)
        suffix = f" ({', '.join(aliases)})" if aliases else ""
        return f"session {node.ID}{suffix}"  # type: ignore[attr-defined]

    def get_session_refcount(self, session: Any = None) -> int:
        """A session's reference count, by POE's kinds (POE-SEMANTICS 3.1)."""
        return self._session(session)._refcount()

    def get_session_extref_count(self, session: Any = None) -> int:
        """Number of a session's non-zero extra-reference tags."""
        return len(self._session(session)._extrefs)

    def extref_count(self) -> int:
        """Number of sessions holding extra references."""
        return sum(1 for s in self.kernel._sessions.values() if s._extrefs)

    def session_handle_count(self, session: Any = None) -> int:
        """Distinct file descriptors a session watches (paused too)."""
        return len(self._session(session)._fds)

    def handle_count(self) -> int:
        """Distinct file descriptors watched in the process."""
        return len(self.kernel._fd_watch)

    def is_handle_tracked(self, handle: Any, mode: int) -> bool:
        """Whether ``handle`` is watched in ``mode`` (0 read, 1 write)."""
        fd = handle if isinstance(handle, int) else handle.fileno()
        watch = self.kernel._fd_watch.get(fd)
        return watch is not None and watch.modes[mode] is not None

    def get_session_children(self, session: Any = None) -> list[Session]:
        """A session's child sessions."""
        return list(self._session(session)._children)

    def is_session_child(self, parent: Any, session: Any = None) -> bool:
        """Whether ``session`` is a child of ``parent``."""
        return self._session(session)._parent is self._session(parent)

    def get_session_parent(self, session: Any = None) -> _Node | None:
        """A session's parent (the kernel for top-level sessions)."""
        return self._session(session)._parent

    # -- signals --------------------------------------------------------------

    def get_signal_type(self, name: str) -> SignalClass:
        """0 benign, 1 terminal, 2 nonmaskable."""
        return signal_type(name)

    def is_signal_watched(self, name: str) -> bool:
        """Whether any session watches signal ``name``."""
        return bool(self.signal_watchers(name))

    def signal_watchers(self, name: str) -> dict[_Node, str]:
        """``{session: event}`` for every watcher of ``name``."""
        return self.kernel.signal_watchers(name)

    def signals_watched_by_session(self, session: Any = None) -> dict[str, str]:
        """``{signal name: event}`` for one session."""
        node = self._session(session)
        return {name: w.event for name, w in node._sig_watchers.items()}

    def is_signal_watched_by_session(self, name: str, session: Any = None) -> bool:
        """Whether a session watches signal ``name``."""
        return name in self._session(session)._sig_watchers

    def stay_alive_reasons(self, session: Any = None) -> dict[str, int]:
        """What holds a session alive, kind by kind (kernelish addition)."""
        node = self._session(session)
        return {
            "events_to": node._to,
            "events_from": node._from,
            "aliases": len(node._aliases),
            "extrefs": len(node._extrefs),
            "handles": len(node._fds),
            "children": len(node._children),
            "child_pids": len(node._pids),
        }


def _type_name(etype: int) -> str:
    return EventType(etype).peek_name()
