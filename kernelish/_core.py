"""The kernel's core: sessions, the dispatch of one event, lifetime and errors.

Discussion
----------
Everything here follows POE-SEMANTICS sections 2, 3, 5 and 6:

* ``_enqueue`` / ``_release`` keep the two event reference kinds ("events to
  me", "events from me to others") that keep a session alive; a session whose
  count reaches zero is *marked*, and the sweep at the end of the dispatch pass
  stops it unless something rescued it in the meantime (3.2).
* ``_invoke`` is the one place a handler runs.  It builds the ``_`` argument,
  switches the active session and event, and sends every exception through
  ``_handler_failed`` -- POE's DIE rule (section 6).  ``SystemExit`` and
  ``KeyboardInterrupt`` pass through untouched.
* ``_stop_session`` is POE's stop procedure, step by step (3.3).

The mixins in ``_timers``, ``_select``, ``_signals`` and ``_children`` add the
kernel calls of one mechanism each; ``_kernel.Kernel`` holds them together.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import socket
import time
from collections.abc import Callable
from heapq import heappop
from types import CodeType
from typing import Any

from ._event import (
    ET_ALARM,
    ET_CHILD,
    ET_GC,
    ET_PARENT,
    ET_POST,
    ET_SELECT,
    ET_SIGDIE,
    ET_SIGNAL,
    ET_START,
    ET_STOP,
    EV_ARGS,
    EV_CANCELLED,
    EV_DEST,
    EV_FILE,
    EV_FROM_STATE,
    EV_ID,
    EV_LINE,
    EV_NAME,
    EV_PRIORITY,
    EV_SOURCE,
    EV_TYPE,
    Event,
    _line_tables,
    caller_site,
)
from ._handler_args import HandlerArgs, make_handler_args
from ._queue import EventQueue
from ._session import Handler, Lifecycle, Session, _Node

__all__ = ["KernelCore", "find_handler", "log"]

log = logging.getLogger("kernelish")

_ALIVE = Lifecycle.ALIVE
_HOSTNAME = socket.gethostname()


def find_handler(
    session: _Node, state: str, args: tuple[Any, ...]
) -> tuple[Handler, Any, str, tuple[Any, ...]] | None:
    """The handler for ``state``, or ``_default`` with ``(state, [args])``
    as its arguments (POE-SEMANTICS 2.3); None when neither exists.
    Returns ``(func, obj, state, args)`` as the handler must see them."""
    entry = session._states.get(state)
    if entry is not None:
        return entry[0], entry[1], state, args
    entry = session._states.get("_default")
    if entry is None:
        return None
    return entry[0], entry[1], "_default", (state, list(args))


class KernelCore(_Node):
    """State and mechanisms every kernel mixin builds on."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._queue = EventQueue()
        self._sessions: dict[int, Session] = {}
        self._alias_table: dict[str, Session] = {}
        self._session_ids = itertools.count(1)
        self._active_session: _Node = self
        self._active_event: str | None = None
        self._marked: dict[_Node, None] = {}
        self._pending_error: BaseException | None = None
        self._kernel_alive = False
        self._extref_tags = 0
        self._sig_handled_count = 0
        self._id_seq = 0
        self._pid = os.getpid()
        self._id = self._make_id()
        self._reap_needed = False
        #: Python's face of Perl's ``$!``: the errno of the last failed call.
        self.last_error = 0

    # -- identity ---------------------------------------------------------

    def _make_id(self) -> str:
        self._id_seq += 1
        return f"{_HOSTNAME}-{int(time.time()):08x}-{os.getpid():08x}-{self._id_seq:08x}"

    @property
    def ID(self) -> str:
        """The kernel's ID: a string unique to this process (``$poe_kernel->ID``)."""
        return self._id

    # -- queueing ---------------------------------------------------------

    def _enqueue(
        self,
        dest: _Node,
        source: _Node,
        name: str,
        args: tuple[Any, ...],
        etype: int,
        file: str | None = None,
        line: int | None = None,
    ) -> Event:
        """Queue a FIFO event (post, signal, GC marker) due now."""
        event = [
            self._clock(),
            next(self._queue._ids),
            dest,
            source,
            name,
            args,
            etype,
            file,
            line,
            self._active_event,
            False,
        ]
        self._queue.fifo.append(event)
        if not dest._to:
            # A marked session is rescued by any new reference (3.2); dropping
            # the mark now spares the sweep a look at it.
            self._marked.pop(dest, None)
        dest._to += 1
        if source is not dest:
            if not source._from:
                self._marked.pop(source, None)
            source._from += 1
        return event

    def _release(self, event: Event) -> None:
        """Drop the references a queued event held (it ran or was purged)."""
        dest = event[EV_DEST]
        dest._to -= 1
        if not dest._to and not dest._refs and not dest._from:
            self._marked[dest] = None
        source = event[EV_SOURCE]
        if source is not dest:
            source._from -= 1
            if not source._from and not source._refs and not source._to:
                self._marked[source] = None

    def _unref(self, node: _Node, n: int = 1) -> None:
        """Drop ``n`` per-item references (alias, tag, fd, child, pid)."""
        node._refs -= n
        if not node._refs and not node._to and not node._from:
            self._marked[node] = None

    # -- running handlers -------------------------------------------------

    def _invoke(
        self,
        session: _Node,
        state: str,
        args: tuple[Any, ...],
        sender: _Node,
        file: str | CodeType | None,
        line: int | None,
        from_state: str | None,
        etype: int,
    ) -> Any:
        """Run one handler of ``session`` with exceptions trapped (POE's
        ``_dispatch_event``).  ``file``/``line`` are the caller site, as an
        event stores it (see :func:`caller_site`)."""
        found = find_handler(session, state, args)
        if found is None:
            return None
        func, obj, state, args = found
        heap = getattr(session, "heap", None)
        if file.__class__ is CodeType:
            file, line = caller_site(file, line)
        handler_args = make_handler_args(
            (obj, session, self, heap, state, sender, None, file, line, from_state, *args)
        )
        prev_session = self._active_session
        prev_event = self._active_event
        self._active_session = session
        self._active_event = state
        try:
            return func(handler_args)
        except Exception as exc:
            self._handler_failed(exc, session, state, sender, file, line, from_state, etype)
            return None
        finally:
            self._active_session = prev_session
            self._active_event = prev_event

    def _queue_callback(self, session: _Node, func: Callable[[], Any], label: str) -> None:
        """Run ``func()`` as ``session`` in the next dispatch pass (a wheel's
        deferred I/O step, e.g. FlushedEvent after a write done in ``put``)."""
        self._enqueue(session, session, label, (func,), ET_SELECT)

    def _invoke_callable(self, session: _Node, func: Callable[..., Any], *args: Any) -> Any:
        """Run an internal callback (a wheel's I/O handler) as ``session``,
        with the same exception rule as a handler."""
        prev_session = self._active_session
        prev_event = self._active_event
        self._active_session = session
        try:
            return func(*args)
        except Exception as exc:
            name = getattr(func, "__name__", repr(func))
            self._handler_failed(exc, session, name, session, None, None, prev_event, 0)
            return None
        finally:
            self._active_session = prev_session
            self._active_event = prev_event

    def _handler_failed(
        self,
        exc: Exception,
        session: _Node,
        state: str,
        sender: _Node,
        file: str | CodeType | None,
        line: int | None,
        from_state: str | None,
        etype: int,
    ) -> None:
        """The one funnel for handler exceptions: POE's DIE rule (section 6)."""
        if etype & (ET_STOP | ET_SIGDIE) or self._active_session is self:
            # Errors in _stop, in DIE handlers, or after stop() skip DIE.
            log.debug("%d: error in %s of %r stored for re-raise", os.getpid(), state, session)
            self._store_error(exc)
            return
        if file.__class__ is CodeType:
            file, line = caller_site(file, line)
        # POE's seven keys (file/line: where the failed event was posted, as
        # POE has them), plus the exception itself: its traceback says where
        # the error happened.
        payload = {
            "error_str": f"{type(exc).__name__}: {exc}",
            "error": exc,
            "dest_session": session,
            "source_session": sender,
            "event": state,
            "file": file,
            "line": line,
            "from_state": from_state,
        }
        self._enqueue(session, session, "_signal", ("DIE", payload), ET_SIGNAL | ET_SIGDIE)

    def _store_error(self, exc: BaseException) -> None:
        if self._pending_error is None:
            self._pending_error = exc
        elif exc is not self._pending_error:
            self._pending_error.add_note(
                "Additional error thrown in handler for previous error: "
                f"{type(exc).__name__}: {exc}"
            )

    def _raise_pending(self) -> None:
        exc = self._pending_error
        if exc is not None:
            self._pending_error = None
            raise exc

    # -- sessions ---------------------------------------------------------

    def _initialize(self) -> None:
        """Bring the kernel pseudo-session (back) to life for a new run."""
        self._kernel_alive = True
        self._lifecycle = _ALIVE
        self._active_session = self
        self._active_event = None

    def _create_session(
        self,
        cls: type[Session],
        states: dict[str, tuple[Handler, Any]],
        heap: Any,
        args: tuple[Any, ...],
        options: dict[str, Any],
    ) -> Session | None:
        if "_start" not in states:
            log.warning("%d: discarding session: no '_start' state", os.getpid())
            return None
        if not self._kernel_alive:
            self._initialize()
        session = cls(next(self._session_ids), heap)
        session._states = states
        session.options = options
        parent = self._active_session
        session._parent = parent
        parent._children[session] = None
        parent._refs += 1
        self._sessions[session.ID] = session
        session._lifecycle = _ALIVE
        ret = self._invoke(session, "_start", args, parent, None, None, None, ET_START)
        if session._lifecycle is _ALIVE and session._parent is parent and parent is not self:
            self._invoke(
                parent, "_child", ("create", session, ret), self, None, None, None, ET_CHILD
            )
        if session._lifecycle is _ALIVE:
            self._enqueue(session, session, "_garbage_collect", (), ET_GC)
        return session

    def _descendants(self, node: _Node) -> list[Session]:
        """``node``'s subtree, breadth first, without ``node``."""
        out: list[Session] = []
        frontier = list(node._children)
        while frontier:
            out.extend(frontier)
            frontier = [c for s in frontier for c in s._children]
        return out

    def _stop_session(self, session: Session, sender: _Node) -> None:
        """POE's stop procedure (POE-SEMANTICS 3.3), in its exact order."""
        if session._lifecycle is not _ALIVE:
            return
        session._lifecycle = Lifecycle.STOPPING
        parent = session._parent
        assert parent is not None
        for child in list(session._children):
            self._invoke(parent, "_child", ("gain", child, None), self, None, None, None, ET_CHILD)
            self._invoke(child, "_parent", (session, parent), self, None, None, None, ET_PARENT)
        ret = self._invoke(session, "_stop", (), sender, None, None, None, ET_STOP)
        self._invoke(parent, "_child", ("lose", session, ret), self, None, None, None, ET_CHILD)
        # Bookkeeping: the tree first, then every resource the session held.
        parent._children.pop(session, None)
        for child in list(session._children):
            child._parent = parent
            parent._children[child] = None
            parent._refs += 1
        session._children.clear()
        for alias in session._aliases:
            self._alias_table.pop(alias, None)
        session._aliases.clear()
        self._extref_tags -= len(session._extrefs)
        session._extrefs.clear()
        self._release_session_resources(session)
        self._purge_events(session)
        self._sessions.pop(session.ID, None)
        session._refs = 0
        session._lifecycle = Lifecycle.STOPPED
        self._marked.pop(session, None)
        self._unref(parent)

    def _release_session_resources(self, session: Session) -> None:
        """Release handles, signal watchers and pid watchers (the mixins
        extend this)."""

    def _purge_events(self, session: _Node) -> None:
        """Cancel every queued event to or from ``session`` (3.3 step 4)."""
        queue = self._queue
        for timers in session._timers_by_name.values():
            for event in timers.values():
                queue.cancel_timer(event)
                self._release(event)
        session._timers_by_name.clear()
        if session._to or session._from:
            for event in queue.fifo:
                if not event[EV_CANCELLED] and (
                    event[EV_DEST] is session or event[EV_SOURCE] is session
                ):
                    queue.cancel_fifo(event)
                    self._release(event)

    def _sweep(self) -> None:
        """Stop marked sessions that nothing rescued, newest mark first."""
        marked = self._marked
        while marked:
            node, _ = marked.popitem()
            if (
                node is not self
                and node._lifecycle is _ALIVE
                and not node._refs
                and not node._to
                and not node._from
            ):
                self._stop_session(node, self)  # type: ignore[arg-type]

    # -- dispatch ---------------------------------------------------------

    def _dispatch(self, event: Event) -> None:
        """Deliver one dequeued event (POE's ``_data_ev_dispatch_due`` body)."""
        self._release(event)
        etype = event[EV_TYPE]
        dest = event[EV_DEST]
        args = event[EV_ARGS]
        if etype & ET_SIGNAL:
            self._dispatch_signal(dest, args[0], args[1:], etype)
            return
        if etype & ET_GC or dest is self:
            return
        name = event[EV_NAME]
        if etype & (ET_ALARM | ET_SELECT):
            named = dest._timers_by_name.get(name)
            if named is not None:
                named.pop(event[EV_ID], None)
                if not named:
                    del dest._timers_by_name[name]
        if etype & ET_SELECT:
            self._invoke_callable(dest, args[0])
            return
        self._invoke(
            dest,
            name,
            args,
            event[EV_SOURCE],
            event[EV_FILE],
            event[EV_LINE],
            event[EV_FROM_STATE],
            etype,
        )

    def _dispatch_signal(
        self, target: _Node, name: str, args: tuple[Any, ...], etype: int
    ) -> None:  # pragma: no cover - provided by SignalsAPI
        raise NotImplementedError

    def _dispatch_due(self, now: float, poll_by: float | None = None) -> None:
        """Dispatch every event due at ``now``, when the pass began
        (POE-SEMANTICS 5.2).

        Posts queued during the pass wait for the next pass; timers due by
        ``now`` run in it, merged with posts by ``(priority, id)``.

        With ``poll_by`` (``run()``'s case) the method goes on with further
        passes, each with a fresh ``now``, while posted events keep coming,
        until the clock reaches ``poll_by``: a pass is POE's timeslice minus
        the selector poll and the idle check, which matter only when the
        FIFO is empty or once every ``POLL_INTERVAL``.

        This loop is the kernel's hot path (``bench/dispatch.py``): the
        common case -- a post to a session with a handler for it -- is
        ``_release`` and ``_invoke`` written out inline, and the active
        session is restored once, when the loop ends.
        """
        queue = self._queue
        fifo = queue.fifo
        popleft = fifo.popleft
        timer_entries = queue.timer_entries
        pending_timers = queue.pending
        marked = self._marked
        clock = self._clock
        dispatch = self._dispatch
        handler_failed = self._handler_failed
        line_tables = _line_tables
        new_handler_args = object.__new__
        prev_session = self._active_session
        prev_event = self._active_event
        try:
            while True:
                budget = len(fifo)
                while True:
                    if pending_timers:
                        queue.file_pending()
                    timers = queue.timer_head
                    if timers and timers[0][EV_PRIORITY] <= now:
                        timer = timers[0]
                        head = fifo[0] if budget and fifo else None
                        if head is not None and (
                            head[EV_PRIORITY] < timer[EV_PRIORITY]
                            or (
                                head[EV_PRIORITY] == timer[EV_PRIORITY]
                                and head[EV_ID] < timer[EV_ID]
                            )
                        ):
                            event = popleft()
                            budget -= 1
                            if event[EV_CANCELLED]:
                                queue._dead_fifo -= 1
                                continue
                        else:
                            heappop(timers)
                            if not timers:
                                queue.next_bucket()
                            if timer[EV_CANCELLED]:
                                queue._dead_timers -= 1
                                continue
                            del timer_entries[timer[EV_ID]]
                            event = timer
                    elif budget and fifo:
                        event = popleft()
                        budget -= 1
                        if event[EV_CANCELLED]:
                            queue._dead_fifo -= 1
                            continue
                    else:
                        break
                    dest = event[EV_DEST]
                    name = event[EV_NAME]
                    entry = dest._states.get(name)
                    etype = event[EV_TYPE]
                    if (etype != ET_POST and etype != ET_ALARM) or entry is None or dest is self:
                        # Anything but a post or a timer for a handler that exists.
                        dispatch(event)
                    else:
                        if etype == ET_ALARM:
                            named = dest._timers_by_name.get(name)
                            if named is not None:
                                named.pop(event[EV_ID], None)
                                if not named:
                                    del dest._timers_by_name[name]
                        # _release, inlined.
                        dest._to -= 1
                        if not dest._to and not dest._refs and not dest._from:
                            marked[dest] = None
                        source = event[EV_SOURCE]
                        if source is not dest:
                            source._from -= 1
                            if not source._from and not source._refs and not source._to:
                                marked[source] = None
                        # _invoke, inlined.
                        func, obj = entry
                        file = event[EV_FILE]
                        line = event[EV_LINE]
                        if file.__class__ is CodeType:
                            # caller_site, inlined for a code seen before.
                            table = line_tables.get(file)
                            if table is None:
                                file, line = caller_site(file, line)
                            else:
                                line = table.get(line)
                                file = file.co_filename
                        # make_handler_args, inlined.
                        handler_args = new_handler_args(HandlerArgs)
                        handler_args._positions = (
                            obj,
                            dest,
                            self,
                            dest.heap,
                            name,
                            source,
                            None,
                            file,
                            line,
                            event[EV_FROM_STATE],
                            *event[EV_ARGS],
                        )
                        self._active_session = dest
                        self._active_event = name
                        try:
                            func(handler_args)
                        except Exception as exc:
                            handler_failed(
                                exc, dest, name, source, file, line, event[EV_FROM_STATE], etype
                            )
                        self._active_session = prev_session
                        self._active_event = prev_event
                    if self._pending_error is not None and self._sessions:
                        # POE-SEMANTICS 5.2: a stored error stops everyone at once.
                        self._stop_all(self._active_session)
                if marked:
                    self._sweep()
                if poll_by is None or not fifo or not self._kernel_alive or self._reap_needed:
                    return
                now = clock()
                if now >= poll_by:
                    return
        finally:
            self._active_session = prev_session
            self._active_event = prev_event

    def _stop_all(self, sender: _Node) -> None:
        """Stop every session but the kernel, leaves first (``stop()``)."""
        for session in reversed(self._descendants(self)):
            self._stop_session(session, sender)

    # -- errors -----------------------------------------------------------

    @staticmethod
    def strerror(code: int) -> str:
        """Text for an errno held in :attr:`last_error` (Perl's ``"$!"``)."""
        return os.strerror(code) if code else ""


ESRCH = errno.ESRCH
EPERM = errno.EPERM
EINVAL = errno.EINVAL
EEXIST = errno.EEXIST
