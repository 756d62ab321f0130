"""Introspection of a running kernel: a port of POE::API::Peek (2.20).

``api = Peek(); api.event_queue_dump()`` reads like
``my $api = POE::API::Peek->new; $api->event_queue_dump``.  Every "session"
argument takes a session, an ID or an alias, and defaults to the active
session.  The Daemon component's ``peek()`` dump is built on this.
"""

from __future__ import annotations

from typing import Any, TypedDict

from ._event import EventType
from ._introspect import KernelView
from ._kernel import Kernel
from ._runtime import current_kernel
from ._session import Node, Session
from ._signals import SignalClass, signal_type

__all__ = ["Peek", "QueueItem"]


class QueueItem(TypedDict):
    """One entry of :meth:`Peek.event_queue_dump`."""

    ID: int
    index: int
    priority: float
    event: str
    source: Node
    destination: Node
    type: str


class Peek:
    """Read-only views of the kernel's tables (port of POE::API::Peek),
    built on :attr:`Kernel.introspection`."""

    def __init__(self, kernel: Kernel | None = None) -> None:
        self.kernel = kernel if kernel is not None else current_kernel()
        self._view: KernelView = self.kernel.introspection

    def _session(self, session: Any = None) -> Node:
        if session is None:
            return self.kernel.get_active_session()
        node = self._view.resolve(session)
        if node is None:
            raise LookupError(f"no such session: {session!r}")
        return node

    # -- the kernel ---------------------------------------------------------

    def id(self) -> str:
        """The kernel's ID string."""
        return self.kernel.ID

    def is_kernel_running(self) -> bool:
        """Whether the kernel has sessions to run (Peek's always said 1)."""
        return self._view.alive()

    def active_event(self) -> str | None:
        """The event being handled now, or None."""
        return self.kernel.get_active_event()

    def active_signal(self) -> str | None:
        """The signal whose watchers run now, or None (kernelish addition)."""
        return self._view.active_signal()

    def current_session(self) -> Node:
        """The active session (the kernel outside handlers)."""
        return self.kernel.get_active_session()

    def which_loop(self) -> str:
        """The event loop in use: the ``selectors`` class's name."""
        return self._view.loop_name()

    # -- the queue ----------------------------------------------------------

    def event_queue_dump(self) -> list[QueueItem]:
        """Every queued event in dispatch order, with ID, index, priority (due
        epoch), event, source, destination and type."""
        offset = self._view.epoch_offset()
        return [
            QueueItem(
                ID=event.id,
                index=index,
                priority=event.priority + offset,
                event=event.name,
                source=event.source,
                destination=event.dest,
                type=EventType(event.etype).peek_name(),
            )
            for index, event in enumerate(self._view.queued())
        ]

    def event_count_to(self, session: Any = None) -> int:
        """Queued events addressed to a session."""
        node = self._session(session)
        return sum(1 for e in self._view.queued() if e.dest is node)

    def event_count_from(self, session: Any = None) -> int:
        """Queued events a session sent to *other* sessions."""
        node = self._session(session)
        return sum(1 for e in self._view.queued() if e.source is node and e.dest is not node)

    def event_list(self) -> dict[int, list[str]]:
        """``{session ID: sorted state names}`` for every user session."""
        return {s.ID: self._view.states_of(s) for s in self._view.sessions()}

    # -- sessions -------------------------------------------------------------

    def session_list(self) -> list[Node]:
        """Every session, the kernel first (as Peek does on POE >= 1.350)."""
        view = self._view
        return ([self.kernel] if view.alive() else []) + list(view.sessions())

    def session_count(self) -> int:
        """Number of sessions, the kernel included."""
        return len(self.session_list())

    def resolve_alias(self, name: str) -> Session | None:
        """The session that holds alias ``name``."""
        return self._view.alias_owner(name)

    def resolve_session_to_id(self, session: Any = None) -> int | str | None:
        """A session's ID."""
        return self.kernel.ID_session_to_id(self._session(session))

    def session_alias_list(self, session: Any = None) -> list[str]:
        """A session's aliases, sorted."""
        return self._view.aliases_of(self._session(session))

    def session_alias_count(self, session: Any = None) -> int:
        """How many aliases a session has."""
        return len(self._view.aliases_of(self._session(session)))

    def session_event_list(self, session: Any = None) -> list[str]:
        """A session's state names, sorted."""
        return self._view.states_of(self._session(session))

    def session_id_loggable(self, session: Any = None) -> str:
        """``session 2 (Daemon)``, or ``session <kernel ID>`` for the kernel."""
        node = self._session(session)
        if node is self.kernel:
            return f"session {self.kernel.ID}"
        aliases = self._view.aliases_of(node)
        suffix = f" ({', '.join(aliases)})" if aliases else ""
        return f"session {node.ID}{suffix}"  # type: ignore[attr-defined]

    def get_session_refcount(self, session: Any = None) -> int:
        """A session's reference count, by POE's kinds (POE-SEMANTICS 3.1)."""
        return self._view.refcount(self._session(session))

    def get_session_extref_count(self, session: Any = None) -> int:
        """Number of a session's non-zero extra-reference tags."""
        return len(self._view.extrefs_of(self._session(session)))

    def extref_count(self) -> int:
        """Number of sessions holding extra references."""
        return sum(1 for s in self._view.sessions() if self._view.extrefs_of(s))

    def session_handle_count(self, session: Any = None) -> int:
        """Distinct file descriptors a session watches (paused too)."""
        return self._view.handles_of(self._session(session))

    def handle_count(self) -> int:
        """Distinct file descriptors watched in the process."""
        return self._view.handle_count()

    def is_handle_tracked(self, handle: Any, mode: int) -> bool:
        """Whether ``handle`` is watched in ``mode`` (0 read, 1 write)."""
        return self._view.is_watched(handle, mode)

    def get_session_children(self, session: Any = None) -> list[Session]:
        """A session's child sessions."""
        return self._view.children_of(self._session(session))

    def is_session_child(self, parent: Any, session: Any = None) -> bool:
        """Whether ``session`` is a child of ``parent``."""
        return self._view.parent_of(self._session(session)) is self._session(parent)

    def get_session_parent(self, session: Any = None) -> Node | None:
        """A session's parent (the kernel for top-level sessions)."""
        return self._view.parent_of(self._session(session))

    # -- signals --------------------------------------------------------------

    def get_signal_type(self, name: str) -> SignalClass:
        """0 benign, 1 terminal, 2 nonmaskable."""
        return signal_type(name)

    def is_signal_watched(self, name: str) -> bool:
        """Whether any session watches signal ``name``."""
        return bool(self.signal_watchers(name))

    def signal_watchers(self, name: str) -> dict[Node, str]:
        """``{session: event}`` for every watcher of ``name``."""
        return self._view.signal_watchers(name)

    def signals_watched_by_session(self, session: Any = None) -> dict[str, str]:
        """``{signal name: event}`` for one session."""
        return self._view.signals_of(self._session(session))

    def is_signal_watched_by_session(self, name: str, session: Any = None) -> bool:
        """Whether a session watches signal ``name``."""
        return name in self._view.signals_of(self._session(session))

    def stay_alive_reasons(self, session: Any = None) -> dict[str, int]:
        """What holds a session alive, kind by kind (kernelish addition)."""
        node = self._session(session)
        view = self._view
        return {
            "events_to": view.events_to(node),
            "events_from": view.events_from(node),
            "aliases": len(view.aliases_of(node)),
            "extrefs": len(view.extrefs_of(node)),
            "handles": view.handles_of(node),
            "children": len(view.children_of(node)),
            "child_pids": view.pids_of(node),
        }
