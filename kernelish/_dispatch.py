"""The dispatcher: sessions, their lifetimes, and the delivery of events.

Discussion
----------
Everything here follows POE-SEMANTICS sections 2, 3, 4.2, 5 and 6:

* ``hold`` / ``release`` keep the two event reference kinds ("events to
  me", "events from me to others") that keep a session alive; a session whose
  count reaches zero is *marked*, and the sweep at the end of the dispatch
  pass stops it unless something rescued it in the meantime (3.2).
* :meth:`Dispatcher.invoke` is the one place a handler runs.  It builds the
  ``_`` argument, switches the active session and event, and sends every
  exception through :meth:`Dispatcher.handler_failed` -- POE's DIE rule
  (section 6).  ``SystemExit`` and ``KeyboardInterrupt`` pass through
  untouched.  :meth:`Dispatcher.deliver` is the self-call (a wheel's events
  and ``call()`` to the active session), :meth:`Dispatcher.run_callable` a
  wheel's I/O step; the dispatch loop keeps one documented inlined copy of
  ``invoke`` (the hot path).
* :meth:`Dispatcher.dispatch_signal` delivers a signal over the session tree
  (4.2) and applies the terminal and nonmaskable rules.
* :meth:`Dispatcher.stop_session` is POE's stop procedure, step by step (3.3);
  the resources a session held are released by ``release_resources``, which
  the kernel gives at construction (the watchers, the signal hub, the child
  reaper, in that order).

The dispatcher owns the session table; the kernel is its pseudo-session (the
root of the tree) and gives it the queue and the signal hub.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from heapq import heappop
from types import CodeType
from typing import TYPE_CHECKING, Any

from ._event import (
    ET_ALARM,
    ET_CALL,
    ET_CHILD,
    ET_DEFERRED,
    ET_GC,
    ET_PARENT,
    ET_POST,
    ET_SIGDIE,
    ET_SIGNAL,
    ET_START,
    ET_STOP,
    Event,
    _line_tables,
    caller_site,
    new_event,
)
from ._handler_args import HandlerArgs
from ._queue import EventQueue
from ._session import Handler, Lifecycle, Node, Session
from ._sessions import SessionTable
from ._signals import SignalClass, SignalHub, signal_type

if TYPE_CHECKING:
    from ._children import ChildReaper
    from ._kernel import Kernel

__all__ = ["Dispatcher", "find_handler"]

log = logging.getLogger("kernelish")

_ALIVE = Lifecycle.ALIVE
_STOPPING = Lifecycle.STOPPING


def find_handler(
    session: Node, state: str, args: tuple[Any, ...]
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


def _hears_child(parent: Node) -> bool:
    """Whether ``_child`` would run a handler of ``parent`` (its own, or
    ``_default``): a parent without one -- a component's manager making a
    session per connection -- spares the call."""
    states = parent._states
    return "_child" in states or "_default" in states


class Dispatcher:
    """Sessions and the delivery of events to them (the heart of POE::Kernel).

    ``kernel`` is the pseudo-session at the root of the tree (and what
    handlers get as ``_[KERNEL]``); ``release_resources(session)`` releases
    what a stopping session held; ``is_idle()`` is the kernel's idle check
    (the IDLE signal's ZOMBIE rule); a run of passes ends early when the
    ``reaper`` has a SIGCHLD waiting.
    """

    __slots__ = (
        "_is_idle",
        "_reaper",
        "_release_resources",
        "_sig_handled_count",
        "_signals",
        "active_event",
        "active_session",
        "active_signal",
        "alive",
        "clock",
        "kernel",
        "pending_error",
        "queue",
        "table",
    )

    def __init__(
        self,
        kernel: Kernel,
        queue: EventQueue,
        signals: SignalHub,
        *,
        clock: Callable[[], float],
        release_resources: Callable[[Session], None],
        is_idle: Callable[[], bool],
        reaper: ChildReaper,
    ) -> None:
        self.kernel = kernel
        self.queue = queue
        self._signals = signals
        self.clock = clock
        self._release_resources = release_resources
        self._is_idle = is_idle
        self._reaper = reaper
        #: the session table: IDs, aliases, reference counts
        self.table = SessionTable()
        #: the session whose handler runs now (the kernel outside handlers)
        self.active_session: Node = kernel
        #: the event being handled now (None outside handlers)
        self.active_event: str | None = None
        #: the kernel pseudo-session is alive (``run()`` goes on while it is)
        self.alive = False
        #: an error for ``run()`` to re-raise (POE-SEMANTICS 6)
        self.pending_error: BaseException | None = None
        self._sig_handled_count = 0
        #: the signal whose watchers run now (None outside a signal dispatch)
        self.active_signal: str | None = None

    # -- queueing -------------------------------------------------------------

    def enqueue(
        self,
        dest: Node,
        source: Node,
        name: str,
        args: tuple[Any, ...],
        etype: int,
        file: str | None = None,
        line: int | None = None,
    ) -> Event:
        """Queue a FIFO event (post, signal, GC marker, deferred call) due now."""
        queue = self.queue
        event = new_event(
            self.clock(),
            next(queue.ids),
            dest,
            source,
            name,
            args,
            etype,
            file,
            line,
            self.active_event,
        )
        queue.fifo.append(event)
        self.table.hold(dest, source)
        return event

    # -- running handlers ---------------------------------------------------

    def invoke(
        self,
        session: Node,
        state: str,
        args: tuple[Any, ...],
        sender: Node,
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
        heap = session.heap if isinstance(session, Session) else None
        if file.__class__ is CodeType:
            file, line = caller_site(file, line)
        handler_args = HandlerArgs.of(
            (obj, session, self.kernel, heap, state, sender, None, file, line, from_state, *args)
        )
        prev_session = self.active_session
        prev_event = self.active_event
        self.active_session = session
        self.active_event = state
        try:
            return func(handler_args)
        except Exception as exc:
            self.handler_failed(exc, session, state, sender, file, line, from_state, etype)
            return None
        finally:
            self.active_session = prev_session
            self.active_event = prev_event

    def self_call(
        self,
        session: Node,
        event: str,
        args: tuple[Any, ...],
        file: str | None = None,
        line: int | None = None,
    ) -> Any:
        """A call to the active session itself: POE runs the handler directly,
        exceptions going to the caller, the active event unchanged but for
        the handler's own run (1.2)."""
        found = find_handler(session, event, args)
        if found is None:
            return None
        func, obj, state, args = found
        heap = session.heap if isinstance(session, Session) else None
        prev = self.active_event
        return func(
            HandlerArgs.of(
                (obj, session, self.kernel, heap, state, session, None, file, line, prev, *args)
            )
        )

    def deliver(self, session: Node, event: str, args: tuple[Any, ...]) -> Any:
        """POE's ``$kernel->call($session, $event, @args)`` made by the
        session itself -- how a wheel delivers its events: SENDER is the
        session; when it is the active one the handler runs directly, with
        the active event switched for its run.  None if the session is gone."""
        state = session._lifecycle
        if state is not _ALIVE and state is not _STOPPING:
            return None
        if self.active_session is not session:
            return self.invoke(
                session, event, args, session, None, None, self.active_event, ET_CALL
            )
        entry = session._states.get(event)
        if entry is None:
            return self.self_call(session, event, args)
        func, obj = entry
        prev = self.active_event
        self.active_event = event
        try:
            return func(
                HandlerArgs.of(
                    (
                        obj,
                        session,
                        self.kernel,
                        session.heap,  # type: ignore[attr-defined]
                        event,
                        session,
                        None,
                        None,
                        None,
                        prev,
                        *args,
                    )
                )
            )
        finally:
            self.active_event = prev

    def run_callable(self, session: Node, func: Callable[..., Any], *args: Any) -> Any:
        """Run an internal callback (a wheel's I/O step, a deferred call) as
        ``session``, with the same exception rule as a handler."""
        prev_session = self.active_session
        prev_event = self.active_event
        self.active_session = session
        try:
            return func(*args)
        except Exception as exc:
            name = getattr(func, "__name__", repr(func))
            self.handler_failed(exc, session, name, session, None, None, prev_event, 0)
            return None
        finally:
            self.active_session = prev_session
            self.active_event = prev_event

    def run_state(self, session: Node, state: str, args: tuple[Any, ...]) -> Any:
        """Run a state as an I/O callback (a ``select_read`` watch): SENDER
        is the session itself."""
        return self.invoke(session, state, args, session, None, None, None, 0)

    # -- errors (POE-SEMANTICS 6) ---------------------------------------------

    def handler_failed(
        self,
        exc: Exception,
        session: Node,
        state: str,
        sender: Node,
        file: str | CodeType | None,
        line: int | None,
        from_state: str | None,
        etype: int,
    ) -> None:
        """The one funnel for handler exceptions: POE's DIE rule (section 6)."""
        if etype & (ET_STOP | ET_SIGDIE) or self.active_session is self.kernel:
            # Errors in _stop, in DIE handlers, or after stop() skip DIE.
            log.debug("%d: error in %s of %r stored for re-raise", os.getpid(), state, session)
            self.store_error(exc)
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
        self.enqueue(session, session, "_signal", ("DIE", payload), ET_SIGNAL | ET_SIGDIE)

    def store_error(self, exc: BaseException) -> None:
        """Keep ``exc`` for ``run()`` to re-raise (further ones as notes)."""
        if self.pending_error is None:
            self.pending_error = exc
        elif exc is not self.pending_error:
            self.pending_error.add_note(
                "Additional error thrown in handler for previous error: "
                f"{type(exc).__name__}: {exc}"
            )

    def raise_pending(self) -> None:
        """Re-raise the stored error, if any (``run()``, ``call()``)."""
        exc = self.pending_error
        if exc is not None:
            self.pending_error = None
            raise exc

    # -- sessions ---------------------------------------------------------

    def start(self) -> None:
        """Bring the kernel pseudo-session (back) to life for a new run."""
        kernel = self.kernel
        self.alive = True
        kernel._lifecycle = _ALIVE
        self.active_session = kernel
        self.active_event = None

    def create_session(
        self,
        cls: type[Session],
        states: dict[str, tuple[Handler, Any]],
        heap: Any,
        args: tuple[Any, ...],
        options: dict[str, Any],
    ) -> Session | None:
        """``Session.create``: the session is born, its ``_start`` runs, its
        parent hears ``_child('create')`` (POE-SEMANTICS 3.0)."""
        if "_start" not in states:
            log.warning("%d: discarding session: no '_start' state", os.getpid())
            return None
        if not self.alive:
            self.start()
        kernel = self.kernel
        session = cls(self.table.new_id(), heap)
        session._states = states
        session.options = options
        parent = self.active_session
        self.table.adopt(parent, session)
        session._lifecycle = _ALIVE
        ret = self.invoke(session, "_start", args, parent, None, None, None, ET_START)
        if (
            session._lifecycle is _ALIVE
            and session._parent is parent
            and parent is not kernel
            and _hears_child(parent)
        ):
            self.invoke(
                parent, "_child", ("create", session, ret), kernel, None, None, None, ET_CHILD
            )
        if session._lifecycle is _ALIVE:
            self.enqueue(session, session, "_garbage_collect", (), ET_GC)
        return session

    def stop_session(self, session: Session, sender: Node) -> None:
        """POE's stop procedure (POE-SEMANTICS 3.3), in its exact order."""
        if session._lifecycle is not _ALIVE:
            return
        kernel = self.kernel
        session._lifecycle = _STOPPING
        parent = session._parent
        assert parent is not None
        if session._children:
            for child in list(session._children):
                self.invoke(
                    parent, "_child", ("gain", child, None), kernel, None, None, None, ET_CHILD
                )
                self.invoke(
                    child, "_parent", (session, parent), kernel, None, None, None, ET_PARENT
                )
        ret = self.invoke(session, "_stop", (), sender, None, None, None, ET_STOP)
        if _hears_child(parent):
            self.invoke(
                parent, "_child", ("lose", session, ret), kernel, None, None, None, ET_CHILD
            )
        # Bookkeeping: every resource the session held, its queued events,
        # then the tree and the table.
        self._release_resources(session)
        self.purge_events(session)
        session._lifecycle = Lifecycle.STOPPED
        self.table.forget(session)

    def purge_events(self, session: Node) -> None:
        """Cancel every queued event to or from ``session`` (3.3 step 4)."""
        queue = self.queue
        for timers in session._timers_by_name.values():
            for event in timers.values():
                queue.cancel_timer(event)
                self.table.release(event)
        session._timers_by_name.clear()
        if session._to or session._from:
            for event in queue.fifo:
                if not event.cancelled and (event.dest is session or event.source is session):
                    queue.cancel_fifo(event)
                    self.table.release(event)

    def sweep(self) -> None:
        """Stop marked sessions that nothing rescued, newest mark first."""
        marked = self.table.marked
        kernel = self.kernel
        while marked:
            node, _ = marked.popitem()
            if (
                node is not kernel
                and node._lifecycle is _ALIVE
                and not node._refs
                and not node._to
                and not node._from
            ):
                self.stop_session(node, kernel)  # type: ignore[arg-type]

    def stop_all(self, sender: Node) -> None:
        """Stop every session but the kernel, leaves first (``stop()``)."""
        for session in reversed(self.table.descendants(self.kernel)):
            self.stop_session(session, sender)

    def stop_kernel(self) -> None:
        """The kernel pseudo-session stops: every session goes, run() ends."""
        kernel = self.kernel
        self.stop_all(kernel)
        self.alive = False
        self.queue.clear()
        kernel._to = kernel._from = 0
        self.table.marked.clear()

    # -- signals (POE-SEMANTICS 4.2) -------------------------------------------

    def sig_handled(self) -> None:
        """Mark the signal being dispatched as handled (``sig_handled``)."""
        self._sig_handled_count += 1

    def dispatch_signal(self, target: Node, name: str, args: tuple[Any, ...], etype: int) -> None:
        """Deliver one signal to ``target``'s tree (POE-SEMANTICS 4.2)."""
        kernel = self.kernel
        if target is kernel:
            if not self.alive:
                return
        elif target._lifecycle is not _ALIVE:
            return
        touched: list[Node] = [target, *self.table.descendants(target)]
        if name == "DIE":
            ancestors: list[Node] = []
            parent = target._parent
            while parent is not None and parent is not kernel:
                ancestors.append(parent)
                parent = parent._parent
            touched = ancestors[::-1] + touched
        hub = self._signals
        by_session = hub.watchers(name)
        saved = self._sig_handled_count
        saved_signal = self.active_signal
        self._sig_handled_count = 0
        self.active_signal = name
        try:
            if by_session:
                for node in reversed(touched):
                    watcher = by_session.get(node)
                    if watcher is not None and node._lifecycle is _ALIVE:
                        self.invoke(
                            node,
                            watcher.event,
                            (name, *args, *watcher.extra),
                            kernel,
                            None,
                            None,
                            None,
                            etype,
                        )
            if hub.has_callables(name, len(by_session)):
                # Plain callables on the bus, after the sessions.
                hub.emit_to_callables(name, args)
            if name == "IDLE" and target is kernel and self._is_idle():
                # The kernel's own IDLE watcher, which runs last (3.4).
                self.enqueue(kernel, kernel, "_signal", ("ZOMBIE",), ET_SIGNAL)
            handled = self._sig_handled_count
        finally:
            self._sig_handled_count = saved
            self.active_signal = saved_signal
        kind = signal_type(name)
        if kind is SignalClass.NONMASKABLE or (kind is SignalClass.TERMINAL and not handled):
            for node in reversed(touched):
                if node is kernel:
                    self.stop_kernel()
                else:
                    self.stop_session(node, kernel)  # type: ignore[arg-type]
            if name == "DIE" and args and isinstance(args[0], dict):
                error = args[0].get("error")
                if isinstance(error, BaseException):
                    self.store_error(error)

    # -- the dispatch pass (POE-SEMANTICS 5.2) ---------------------------------

    def dispatch(self, event: Event) -> None:
        """Deliver one dequeued event (POE's ``_data_ev_dispatch_due`` body)."""
        self.table.release(event)
        etype = event.etype
        dest = event.dest
        args = event.args
        if etype & ET_SIGNAL:
            self.dispatch_signal(dest, args[0], args[1:], etype)
            return
        if etype & ET_GC or dest is self.kernel:
            return
        name = event.name
        if etype & (ET_ALARM | ET_DEFERRED):
            dest._unfile_timer(name, event.id)
        if etype & ET_DEFERRED:
            self.run_callable(dest, args[0])
            return
        self.invoke(dest, name, args, event.source, event.file, event.line, event.from_state, etype)

    def dispatch_due(self, now: float, poll_by: float | None = None) -> None:
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
        common case -- a post or a timer to a session with a handler for it
        -- is :meth:`release` and :meth:`invoke` written out inline, and the
        active session is restored once, when the loop ends.
        """
        queue = self.queue
        fifo = queue.fifo
        popleft = fifo.popleft
        timer_entries = queue.timer_entries
        pending_timers = queue.pending
        marked = self.table.marked
        clock = self.clock
        kernel = self.kernel
        reaper = self._reaper
        sessions = self.table.by_id
        dispatch = self.dispatch
        handler_failed = self.handler_failed
        line_tables = _line_tables
        prev_session = self.active_session
        prev_event = self.active_event
        try:
            while True:
                budget = len(fifo)
                while True:
                    if pending_timers:
                        queue.file_pending()
                    timers = queue.timer_head
                    if timers and timers[0][0] <= now:
                        timer = timers[0]
                        head = fifo[0] if budget and fifo else None
                        if head is not None and (
                            head.priority < timer[0]
                            or (head.priority == timer[0] and head.id < timer[1])
                        ):
                            event = popleft()
                            budget -= 1
                            if event.cancelled:
                                queue.dead_fifo -= 1
                                continue
                        else:
                            heappop(timers)
                            if not timers:
                                queue.next_bucket()
                            event = timer_entries.get(timer[1])  # type: ignore[assignment]
                            if event is None or event.priority != timer[0]:
                                # Cancelled, or moved: a dead entry (see _queue).
                                queue.dead_timers -= 1
                                continue
                            del timer_entries[timer[1]]
                    elif budget and fifo:
                        event = popleft()
                        budget -= 1
                        if event.cancelled:
                            queue.dead_fifo -= 1
                            continue
                    else:
                        break
                    dest = event.dest
                    name = event.name
                    entry = dest._states.get(name)
                    etype = event.etype
                    if (etype != ET_POST and etype != ET_ALARM) or entry is None or dest is kernel:
                        # Anything but a post or a timer for a handler that exists.
                        dispatch(event)
                    else:
                        if etype == ET_ALARM:
                            # Node._unfile_timer, inlined.
                            named = dest._timers_by_name.get(name)
                            if named is not None:
                                named.pop(event.id, None)
                                if not named:
                                    del dest._timers_by_name[name]
                        # release(), inlined.
                        dest._to -= 1
                        if not dest._to and not dest._refs and not dest._from:
                            marked[dest] = None
                        source = event.source
                        if source is not dest:
                            source._from -= 1
                            if not source._from and not source._refs and not source._to:
                                marked[source] = None
                        # invoke(), inlined.
                        func, obj = entry
                        file = event.file
                        line = event.line
                        if file.__class__ is CodeType:
                            # caller_site(), inlined for a code seen before.
                            table = line_tables.get(file)
                            if table is None:
                                file, line = caller_site(file, line)
                            else:
                                line = table.get(line)  # type: ignore[arg-type]
                                file = file.co_filename
                        from_state = event.from_state
                        handler_args = HandlerArgs()  # HandlerArgs.of, inlined
                        handler_args._positions = (
                            obj,
                            dest,
                            kernel,
                            dest.heap,  # type: ignore[attr-defined]
                            name,
                            source,
                            None,
                            file,
                            line,
                            from_state,
                            *event.args,
                        )
                        self.active_session = dest
                        self.active_event = name
                        try:
                            func(handler_args)
                        except Exception as exc:
                            handler_failed(exc, dest, name, source, file, line, from_state, etype)
                        self.active_session = prev_session
                        self.active_event = prev_event
                    if self.pending_error is not None and sessions:
                        # POE-SEMANTICS 5.2: a stored error stops everyone at once.
                        self.stop_all(self.active_session)
                if marked:
                    self.sweep()
                if poll_by is None or not fifo or not self.alive or reaper.reap_needed:
                    return
                now = clock()
                if now >= poll_by:
                    return
        finally:
            self.active_session = prev_session
            self.active_event = prev_event
