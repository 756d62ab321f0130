"""Sessions: a heap, a table of states, and what keeps them alive.

A session lives while something references it -- POE counts *kinds* of
references, not items (POE-SEMANTICS 3.1): one for "events queued to it", one
for "events it queued to others", and one per alias, extra-reference tag,
watched file descriptor, child session and awaited child pid.  Signal
watchers do not count.  ``_refs`` holds the sum of the per-item kinds so the
hot path only adjusts the two event counters.

Lifecycle (a state machine; :class:`Lifecycle`)::

    CREATED --_start--> ALIVE --count 0 at sweep / stop / terminal signal--> STOPPING
    STOPPING --_stop, resources released--> STOPPED
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from types import FunctionType
from typing import Any

from ._handler_args import HandlerArgs
from ._handlers import as_handler
from ._runtime import current_kernel

__all__ = ["Handler", "Lifecycle", "Node", "Session"]

Handler = Callable[[HandlerArgs], Any]


class Lifecycle(enum.Enum):
    """Where a session is in its life; transitions only go forward."""

    CREATED = "created"
    ALIVE = "alive"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Node:
    """What the kernel and sessions share: a place in the session tree and
    the reference counts POE keeps for every session.

    Each of the kernel's collaborators keeps its per-session bookkeeping in
    the slot named for it (``_fds``: the watchers, ``_sig_watchers``: the
    signal hub, ``_pids``: the child reaper, ``_timers_by_name``: the timers)
    and adds to ``_refs`` for what it holds; the kernel's stop procedure
    asks each of them to release a stopping session, in one fixed order."""

    __slots__ = (
        "__weakref__",
        "_aliases",
        "_children",
        "_extrefs",
        "_fds",
        "_from",
        "_lifecycle",
        "_parent",
        "_pids",
        "_refs",
        "_sig_watchers",
        "_states",
        "_timers_by_name",
        "_to",
    )

    def __init__(self) -> None:
        self._parent: Node | None = None
        self._children: dict[Session, None] = {}
        self._aliases: set[str] = set()
        self._extrefs: dict[str, int] = {}
        self._fds: dict[int, int] = {}
        self._pids: dict[int, tuple[str | Handler, tuple[Any, ...]]] = {}
        self._sig_watchers: dict[str, Any] = {}
        self._states: dict[str, tuple[Handler, Any]] = {}
        self._timers_by_name: dict[str, dict[int, Any]] = {}
        self._to = 0
        self._from = 0
        self._refs = 0
        self._lifecycle = Lifecycle.CREATED

    def _refcount(self) -> int:
        return self._refs + (self._to > 0) + (self._from > 0)

    def _unfile_timer(self, name: str, event_id: int) -> None:
        """Forget a timer of this session by name (it fired or was removed);
        the dispatch loop keeps an inlined copy."""
        named = self._timers_by_name.get(name)
        if named is not None:
            named.pop(event_id, None)
            if not named:
                del self._timers_by_name[name]


class Session(Node):
    """A POE session (port of POE::Session): states, a heap, and a life.

    Create one with :meth:`Session.create`; the kernel runs its ``_start``
    inside ``create()`` and its ``_stop`` when nothing references it any more.
    """

    __slots__ = ("ID", "heap", "options")

    def __init__(self, session_id: int, heap: Any) -> None:
        super().__init__()
        self.ID = session_id
        self.heap = heap
        self.options: dict[str, Any] = {}

    @classmethod
    def create(
        cls,
        inline_states: Mapping[str, Handler] | None = None,
        object_states: Iterable[tuple[object, Iterable[str] | Mapping[str, str]]] | None = None,
        package_states: Iterable[tuple[type, Iterable[str] | Mapping[str, str]]] | None = None,
        heap: Any = None,
        args: Iterable[Any] | Any = None,
        options: Mapping[str, Any] | None = None,
    ) -> Session | None:
        """Create a session and run its ``_start`` (``POE::Session->create``).

        ``inline_states`` maps event names to functions taking ``_``;
        ``object_states`` is a list of ``(obj, ['ev', ...])`` or
        ``(obj, {'ev': 'method'})`` pairs; ``package_states`` the same with a
        class.  ``heap`` defaults to a fresh dict; ``args`` become ``_start``'s
        ARG0...  Returns the session, or ``None`` (with a warning) when there
        is no ``_start`` state, as POE does.
        """
        states: dict[str, tuple[Handler, Any]] = {}
        for name, func in (inline_states or {}).items():
            if func.__class__ is not FunctionType and not callable(func):
                raise TypeError(f"inline state {name!r} is not callable: {func!r}")
            states[name] = (as_handler(func), None)
        for owner, names in list(object_states or []) + list(package_states or []):
            mapping = dict(names) if isinstance(names, Mapping) else {n: n for n in names}
            for event, method in mapping.items():
                bound = getattr(owner, method, None)
                if not callable(bound):
                    raise TypeError(f"{owner!r} has no method {method!r} for state {event!r}")
                states[event] = (as_handler(bound), owner)
        if args is None:
            start_args: tuple[Any, ...] = ()
        elif isinstance(args, list | tuple):
            start_args = tuple(args)
        else:
            start_args = (args,)
        return current_kernel()._create_session(
            cls, states, {} if heap is None else heap, start_args, dict(options or {})
        )

    @classmethod
    def create_registered(
        cls,
        states: dict[str, tuple[Handler, Any]],
        heap: Any = None,
        args: tuple[Any, ...] = (),
        options: Mapping[str, Any] | None = None,
    ) -> Session | None:
        """:meth:`create` for states already in the form the kernel stores
        them: ``{event: (handler, object)}``, each handler as
        :func:`~kernelish._handlers.as_handler` returns it.  The session
        takes ``states`` as its own (the caller makes a fresh dict).  Not in
        POE: for components that make a session per connection from one
        table of states (ClientTCP), which ``create`` would register one by
        one."""
        return current_kernel()._create_session(
            cls, states, {} if heap is None else heap, args, dict(options or {})
        )

    @property
    def alive(self) -> bool:
        """Whether the session is alive: started and not stopping or stopped."""
        return self._lifecycle is Lifecycle.ALIVE

    def get_heap(self) -> Any:
        """The session's heap (``$session->get_heap``)."""
        return self.heap

    def option(self, **values: Any) -> dict[str, Any]:
        """Set options, returning their old values (``$session->option``)."""
        old = {k: self.options.get(k) for k in values}
        for k, v in values.items():
            if v is None:
                self.options.pop(k, None)
            else:
                self.options[k] = v
        return old

    def postback(self, event: str, *created: Any) -> Callable[..., bool]:
        """A callable that posts ``event`` here with ``(created, called)`` args.

        Port of ``$session->postback``: it holds an extra reference (tag
        ``anon_event``) on the session until it is garbage collected.
        """
        return current_kernel()._make_postback(self, event, created, synchronous=False)

    def callback(self, event: str, *created: Any) -> Callable[..., Any]:
        """Like :meth:`postback` but calls the handler synchronously."""
        return current_kernel()._make_postback(self, event, created, synchronous=True)

    def __repr__(self) -> str:
        aliases = f" ({', '.join(sorted(self._aliases))})" if self._aliases else ""
        return f"<Session {self.ID}{aliases}>"
