"""The public ``Kernel`` and the process's one instance, ``poe_kernel``.

``Kernel`` holds the mechanisms together (one mixin each: timers, I/O
watchers, signals, children) and adds what is left of POE::Kernel's API:
posting and calling, aliases and IDs, extra references, the session tree,
the timeslice and ``run()``, and fork safety.

The timeslice (POE-SEMANTICS 5.3) in three steps: decide the timeout from the
queue head; wait on the selector and run the I/O callbacks; dispatch what was
due when the pass began.  One difference from POE, for throughput: while
posted events are waiting, the selector is polled at most every
:data:`POLL_INTERVAL` seconds instead of every slice, so a flood of posts
costs no system call per event but I/O and signals are still seen within
10 ms.
"""

from __future__ import annotations

import os
import selectors
import signal as _signal
import time
import weakref
from collections.abc import Callable
from sys import _getframe
from typing import Any

from ._asyncio import AsyncioAPI
from ._children import REAP_POLL_INTERVAL, ChildrenAPI
from ._core import EEXIST, EPERM, ESRCH, find_handler
from ._event import (
    ET_CALL,
    ET_CHILD,
    ET_PARENT,
    ET_POST,
    ET_SELECT,
    ET_SIGNAL,
    EV_CANCELLED,
    EV_ID,
    EV_TYPE,
)
from ._fork import ForkSafety, register_fork_hooks
from ._handler_args import make_handler_args
from ._handlers import as_handler
from ._runtime import set_current_kernel
from ._select import MODE_READ, SelectAPI, fileno_of, new_selector
from ._session import Lifecycle, Session, _Node
from ._signals import SignalBus, WakeupPipe
from ._timers import TimersAPI

__all__ = ["POLL_INTERVAL", "Kernel", "poe_kernel"]

#: Longest time the selector goes unpolled while posted events keep coming.
POLL_INTERVAL = 0.008  # 2 ms of slack for the pass in flight: gaps stay <= 10 ms

_ALIVE = Lifecycle.ALIVE
_STOPPING = Lifecycle.STOPPING


class Kernel(AsyncioAPI, ForkSafety, ChildrenAPI, SelectAPI, TimersAPI):
    """POE's kernel (port of POE::Kernel); use the process's ``poe_kernel``.

    The clock is injectable (``Kernel(clock=...)``) so a test can step
    :meth:`run_one_timeslice` on a manual clock.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        #: The pyee bus of named signals: session watchers and plain callables.
        self.events = SignalBus()
        self._os_handlers = {}
        self._pid_watchers = {}
        self._have_children = False
        self._reap_needed = False
        self._last_reap = 0.0
        self._chld_handler_installed = False
        self._fd_watch = {}
        self._selector = new_selector()
        self._wakeup = WakeupPipe()
        self._selector.register(self._wakeup.r, selectors.EVENT_READ, None)
        self._last_poll = 0.0
        self._io = IOPort(self)
        register_fork_hooks(self)

    def __repr__(self) -> str:
        return f"<Kernel {self._id}>"

    # -- destinations -------------------------------------------------------

    def _resolve(self, dest: Any) -> _Node | None:
        """POE's destination resolution: session, ID, alias, the kernel."""
        if isinstance(dest, Session):
            state = dest._lifecycle
            return dest if state is _ALIVE or state is _STOPPING else None
        if isinstance(dest, str):
            if dest.isdigit():
                found = self._sessions.get(int(dest))
                if found is not None:
                    return found
            if dest == self._id:
                return self if self._kernel_alive else None
            return self._alias_table.get(dest)
        if isinstance(dest, int) and not isinstance(dest, bool):
            return self._sessions.get(dest)
        if dest is self:
            return self if self._kernel_alive else None
        return None

    # -- posting and calling ------------------------------------------------

    def post(self, dest: Any, event: str, *args: Any) -> bool:
        """Queue ``event`` for ``dest`` (a session, ID or alias); True, or
        False with :attr:`last_error` = ESRCH (``$kernel->post``)."""
        # The common destinations first; _resolve does POE's full order.
        cls = dest.__class__
        if cls is Session and dest._lifecycle is _ALIVE:
            target: _Node | None = dest
        elif cls is str and not dest.isdigit() and dest in self._alias_table:
            target = self._alias_table[dest]
        else:
            target = self._resolve(dest)
            if target is None:
                self.last_error = ESRCH
                return False
        # _enqueue, inlined (the hot path); the caller site is recorded as
        # code object + instruction offset (see _event.caller_site).
        frame = _getframe(1)
        source = self._active_session
        self._queue.fifo.append(
            [
                self._clock(),
                next(self._queue._ids),
                target,
                source,
                event,
                args,
                ET_POST,
                frame.f_code,
                frame.f_lasti,
                self._active_event,
                False,
            ]
        )
        if not target._to:  # type: ignore[union-attr]
            self._marked.pop(target, None)  # type: ignore[arg-type] # rescued (see _enqueue)
        target._to += 1  # type: ignore[union-attr]
        if source is not target:
            if not source._from:
                self._marked.pop(source, None)
            source._from += 1
            if source is self and self._bridge is not None:
                self._bridge.kick()  # posted from asyncio code
        return True

    def yield_(self, event: str, *args: Any) -> None:
        """Post ``event`` to the active session (``$kernel->yield``; ``yield``
        is a Python keyword).  Returns None, as POE's does."""
        session = self._active_session
        if session is self:
            return
        frame = _getframe(1)
        self._queue.fifo.append(
            [
                self._clock(),
                next(self._queue._ids),
                session,
                session,
                event,
                args,
                ET_POST,
                frame.f_code,
                frame.f_lasti,
                self._active_event,
                False,
            ]
        )
        if not session._to:
            self._marked.pop(session, None)  # rescued (see _enqueue)
        session._to += 1

    def call(self, dest: Any, event: str, *args: Any) -> Any:
        """Run ``dest``'s handler for ``event`` now and return its value
        (``$kernel->call``).  A call to the active session itself goes straight
        to the handler, exceptions included, as POE's does."""
        target = self._resolve(dest)
        if target is None:
            self.last_error = ESRCH
            return None
        self.last_error = 0
        if target is self:
            return None
        frame = _getframe(1)
        file, line = frame.f_code.co_filename, frame.f_lineno
        active = self._active_session
        if target is active:
            return self._self_call(target, event, args, file, line)
        before = self._pending_error
        ret = self._invoke(target, event, args, active, file, line, self._active_event, ET_CALL)
        if active is self and self._bridge is not None:
            self._bridge.kick()  # called from asyncio code: queued work may follow
        if self._pending_error is not None and self._pending_error is not before:
            self._raise_pending()
        return ret

    def _self_call(
        self, session: _Node, event: str, args: tuple[Any, ...], file: str | None, line: int | None
    ) -> Any:
        """A call to the active session: POE runs the handler directly, the
        active event unchanged, exceptions going to the caller (1.2)."""
        found = find_handler(session, event, args)
        if found is None:
            return None
        func, obj, state, args = found
        heap = session.heap if isinstance(session, Session) else None
        return func(
            make_handler_args(
                (
                    obj,
                    session,
                    self,
                    heap,
                    state,
                    session,
                    None,
                    file,
                    line,
                    self._active_event,
                    *args,
                ),
            )
        )

    # -- the extension interface: wheels and components ----------------------

    @property
    def io(self) -> IOPort:
        """The I/O watchers, for wheels (``watch``/``unwatch`` a handle with
        a callable; see :class:`IOPort`)."""
        return self._io

    def deliver(self, session: _Node, event: str, args: tuple[Any, ...]) -> Any:
        """Run ``session``'s handler for ``event`` now, as POE's
        ``$kernel->call($session, $event, @args)`` made by the session
        itself (how a wheel delivers its events): SENDER is the session; when
        it is the active session the handler runs directly, as any self-call.
        None if the session is gone."""
        state = session._lifecycle
        if state is not _ALIVE and state is not _STOPPING:
            return None
        if self._active_session is session:
            entry = session._states.get(event)
            if entry is None:
                return self._self_call(session, event, args, None, None)
            func, obj = entry
            prev = self._active_event
            self._active_event = event
            try:
                return func(
                    make_handler_args(
                        (
                            obj,
                            session,
                            self,
                            session.heap,  # type: ignore[attr-defined]
                            event,
                            session,
                            None,
                            None,
                            None,
                            prev,
                            *args,
                        ),
                    )
                )
            finally:
                self._active_event = prev
        return self._invoke(session, event, args, session, None, None, self._active_event, ET_CALL)

    def run_as(self, session: _Node, func: Callable[..., Any], *args: Any) -> Any:
        """Run ``func(*args)`` as ``session`` (the active session while it
        runs), an exception in it taking POE's DIE path as a handler's would."""
        return self._invoke_callable(session, func, *args)

    def defer(self, session: _Node, func: Callable[[], Any], seconds: float | None = None) -> int:
        """Run ``func()`` as ``session`` in the next dispatch pass, or
        ``seconds`` from now; the queued call keeps the session alive like
        any event.  Returns its ID (for :meth:`cancel_deferred`)."""
        label = getattr(func, "__name__", "<deferred>")
        if seconds is None:
            return self._enqueue(session, session, label, (func,), ET_SELECT)[EV_ID]  # type: ignore[no-any-return]
        prev = self._active_session
        self._active_session = session
        try:
            event = self._add_timer(label, self._clock() + seconds, (func,), ET_SELECT)
        finally:
            self._active_session = prev
        return event[EV_ID]  # type: ignore[no-any-return]

    def cancel_deferred(self, deferred_id: int) -> None:
        """Cancel a call :meth:`defer` queued with a delay (a no-op once it ran)."""
        event = self._queue.timer_entries.get(deferred_id)
        if event is not None and event[EV_TYPE] & ET_SELECT:
            self._remove_timer(event)

    # -- aliases and IDs ----------------------------------------------------

    def alias_set(self, name: str) -> int:
        """Give the active session an alias; 0, or EEXIST if another session
        has it (``alias_set``)."""
        session = self._active_session
        if session is self:
            return EPERM
        owner = self._alias_table.get(name)
        if owner is session:
            return 0
        if owner is not None:
            return EEXIST
        self._alias_table[name] = session  # type: ignore[assignment]
        session._aliases.add(name)
        session._refs += 1
        return 0

    def alias_remove(self, name: str) -> int:
        """Remove an alias of the active session; 0, ESRCH or EPERM."""
        owner = self._alias_table.get(name)
        if owner is None:
            return ESRCH
        if owner is not self._active_session:
            return EPERM
        del self._alias_table[name]
        owner._aliases.discard(name)
        self._unref(owner)
        return 0

    def alias_resolve(self, name: Any) -> _Node | None:
        """The session an alias, ID or session names, or None."""
        return self._resolve(name)

    def alias_list(self, session: Any = None) -> list[str]:
        """A session's aliases, sorted (``alias_list``)."""
        node = self._active_session if session is None else self._resolve(session)
        if node is None:
            self.last_error = ESRCH
            return []
        return sorted(node._aliases)

    def ID_id_to_session(self, session_id: int | str) -> _Node | None:
        """The session with this ID (or the kernel for its ID string), or
        None with ESRCH (``ID_id_to_session``)."""
        node: _Node | None = None
        if isinstance(session_id, int) or (isinstance(session_id, str) and session_id.isdigit()):
            node = self._sessions.get(int(session_id))
        elif session_id == self._id:
            node = self
        if node is None:
            self.last_error = ESRCH
        return node

    def ID_session_to_id(self, session: Any) -> int | str | None:
        """The ID of a session (or the kernel's ID string)."""
        node = self._resolve(session)
        if node is None:
            self.last_error = ESRCH
            return None
        self.last_error = 0
        return node.ID  # type: ignore[attr-defined, no-any-return]

    def get_active_session(self) -> _Node:
        """The session whose handler runs now; the kernel outside handlers."""
        return self._active_session

    def get_active_event(self) -> str | None:
        """The event being handled now; None outside handlers."""
        return self._active_event

    # -- states ---------------------------------------------------------------

    def state(self, name: str, handler: Any = None, method: str | None = None) -> int:
        """Add, replace (``handler`` given) or remove a state of the active
        session (``$kernel->state``).  ``handler`` is a function, or an
        object or class whose ``method`` (default ``name``) handles it."""
        session = self._active_session
        if session is self:
            return ESRCH
        if handler is None:
            session._states.pop(name, None)
        elif callable(handler) and method is None and not isinstance(handler, type):
            session._states[name] = (as_handler(handler), None)
        else:
            func = getattr(handler, method or name, None)
            if not callable(func):
                raise TypeError(f"{handler!r} has no method {method or name!r}")
            session._states[name] = (as_handler(func), handler)
        return 0

    # -- extra references -------------------------------------------------

    def refcount_increment(self, session_id: int, tag: str) -> int | None:
        """Add one to a session's extra-reference ``tag``; returns its count."""
        session = self._sessions.get(session_id) if isinstance(session_id, int) else None
        if session is None:
            self.last_error = ESRCH
            return None
        count = session._extrefs.get(tag, 0) + 1
        session._extrefs[tag] = count
        if count == 1:
            session._refs += 1
            self._extref_tags += 1
        return count

    def refcount_decrement(self, session_id: int, tag: str) -> int | None:
        """Take one from a session's extra-reference ``tag``; returns its count."""
        session = self._sessions.get(session_id) if isinstance(session_id, int) else None
        if session is None or tag not in session._extrefs:
            self.last_error = ESRCH
            return None
        count = session._extrefs[tag] - 1
        if count <= 0:
            del session._extrefs[tag]
            self._extref_tags -= 1
            self._unref(session)
            return 0
        session._extrefs[tag] = count
        return count

    def _make_postback(
        self, session: Session, event: str, created: tuple[Any, ...], synchronous: bool
    ) -> Callable[..., Any]:
        kernel = self
        if synchronous:

            def hook(*called: Any) -> Any:
                return kernel.call(session, event, list(created), list(called))

        else:

            def hook(*called: Any) -> Any:
                return kernel.post(session, event, list(created), list(called))

        if self.refcount_increment(session.ID, "anon_event") is not None:
            weakref.finalize(hook, _postback_gone, weakref.ref(self), session.ID)
        return hook

    # -- the session tree ---------------------------------------------------

    def _reparent(self, child: Session, new_parent: _Node) -> None:
        old = child._parent
        assert old is not None
        old._children.pop(child, None)
        new_parent._children[child] = None
        new_parent._refs += 1
        child._parent = new_parent
        self._unref(old)

    def detach_myself(self) -> bool:
        """Make the active session a child of the kernel (``detach_myself``).
        False with EPERM if it already is one."""
        session = self._active_session
        if not isinstance(session, Session) or session._parent is self:
            self.last_error = EPERM
            return False
        old = session._parent
        assert old is not None
        if self._active_event != "_start":
            self._invoke(old, "_child", ("lose", session, None), self, None, None, None, ET_CHILD)
        self._invoke(session, "_parent", (old, self), self, None, None, None, ET_PARENT)
        self._reparent(session, self)
        return True

    def detach_child(self, child: Any) -> bool:
        """Hand a child of the active session to the kernel (``detach_child``)."""
        node = self._resolve(child)
        if node is None:
            self.last_error = ESRCH
            return False
        parent = self._active_session
        if not isinstance(node, Session) or node._parent is not parent or parent is self:
            self.last_error = EPERM
            return False
        self._invoke(parent, "_child", ("lose", node, None), self, None, None, None, ET_CHILD)
        self._invoke(node, "_parent", (parent, self), self, None, None, None, ET_PARENT)
        self._reparent(node, self)
        return True

    # -- running ------------------------------------------------------------

    def _is_idle(self) -> bool:
        return (
            self._kernel_alive
            and not len(self._queue)
            and not self._fd_watch
            and not self._extref_tags
            and not self._waiting_for_children()
        )

    def _stop_kernel(self) -> None:
        """The kernel pseudo-session stops: every session goes, run() ends."""
        self._stop_all(self)
        self._kernel_alive = False
        self._queue.clear()
        self._to = self._from = 0
        self._marked.clear()

    def _timeslice(self, run_on: bool = False, max_timeout: float = 3600.0) -> None:
        """One POE timeslice (POE-SEMANTICS 5.3): the idle check, the
        timeout from the queue head, the selector poll and its I/O
        callbacks, then the dispatch pass.  With ``run_on`` (``run()``), the
        pass goes on with further passes while posts keep coming, until the
        next poll is due."""
        queue = self._queue
        fifo = queue.fifo
        # A watched fd already means "not idle": spare a server the rest.
        if not self._fd_watch and not len(queue) and self._is_idle() and not self._poll_wakeup():
            self._enqueue(self, self, "_signal", ("IDLE",), ET_SIGNAL)
        now = self._clock()
        if fifo and not fifo[0][EV_CANCELLED]:
            timeout = 0.0
        else:
            head = queue.head_priority()
            timeout = 3600.0 if head is None else min(max(head - now, 0.0), 3600.0)
            if self._chld_handler_installed and timeout > REAP_POLL_INTERVAL:
                # The reaper's safety net needs the loop to come round.
                timeout = REAP_POLL_INTERVAL
        if timeout > max_timeout:
            timeout = max_timeout  # under asyncio the loop does the waiting
        if timeout > 0.0 or not max_timeout or now - self._last_poll >= POLL_INTERVAL:
            ready = self._selector.select(timeout)
            self._last_poll = self._clock()
            if ready:
                self._dispatch_ready(ready)
        if self._reap_needed or (
            self._chld_handler_installed and now - self._last_reap >= REAP_POLL_INTERVAL
        ):
            self._reap()
        self._dispatch_due(self._clock(), self._last_poll + POLL_INTERVAL if run_on else None)

    def run(self) -> None:
        """Dispatch events until no session is left (``$poe_kernel->run``).

        Returns when the kernel's IDLE signal finds nothing left to do; an
        unhandled exception from a handler (POE's DIE) is re-raised here.
        """
        if os.getpid() != self._pid:
            self.has_forked()
        if not self._kernel_alive:
            return
        try:
            _signal.signal(_signal.SIGPIPE, _signal.SIG_IGN)
        except ValueError:  # pragma: no cover - not the main thread
            pass
        try:
            while self._kernel_alive:
                self._timeslice(True)
        finally:
            if not self._kernel_alive:
                self._restore_os_signals()
        self._raise_pending()

    def run_one_timeslice(self) -> bool:
        """Run exactly one timeslice; False once no session is left."""
        if os.getpid() != self._pid:
            self.has_forked()
        if not self._kernel_alive:
            self._restore_os_signals()
            self._raise_pending()
            return False
        self._timeslice()
        self._raise_pending()
        return True

    def run_while(self, flag: Callable[[], bool]) -> None:
        """Run timeslices while ``flag()`` is true (``run_while``)."""
        while flag() and self.run_one_timeslice():
            pass

    def stop(self) -> None:
        """Stop every session now, each getting ``_stop`` (``$kernel->stop``);
        ``run()`` then returns at the next idle check."""
        self._stop_all(self._active_session)
        self._active_session = self
        if self._marked:
            self._sweep()
        if os.getpid() != self._pid:
            self.has_forked()


class IOPort:
    """The kernel's I/O watchers as wheels use them: a handle watched with a
    callable run as a session, held weakly (the kernel must not keep a
    dropped wheel's socket open)."""

    __slots__ = ("_kernel",)

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel

    def watch(
        self,
        session: _Node,
        handle: Any,
        mode: int,
        callback: Callable[[Any, int], Any],
        *,
        paused: bool = False,
        exclusive: bool = False,
    ) -> None:
        """Watch ``handle`` in ``mode`` for ``session``: readiness runs
        ``callback(handle, mode)`` as the session.  ``paused``: registered
        but not armed; ``exclusive``: one process of those sharing a
        readable handle wakes (``EPOLLEXCLUSIVE``, for listeners)."""
        kernel = self._kernel
        kernel._watch_as(session, handle, mode, callback, weak=True, paused=paused)
        if exclusive and mode == MODE_READ:
            kernel._set_exclusive(handle)

    def unwatch(self, fd: int, mode: int, callback: Callable[..., Any]) -> None:
        """Stop watching ``fd`` in ``mode`` if ``callback`` is still its
        watcher (never someone else's watch of a reused fd)."""
        self._kernel._unwatch_if(fd, mode, callback)

    def is_watched(self, handle: Any, mode: int) -> bool:
        """Whether ``handle`` is watched in ``mode``."""
        watch = self._kernel._fd_watch.get(fileno_of(handle))
        return watch is not None and watch.modes[mode] is not None


def _postback_gone(kernel_ref: weakref.ref[Kernel], session_id: int) -> None:
    kernel = kernel_ref()
    if kernel is not None:
        kernel.refcount_decrement(session_id, "anon_event")


#: The process's one kernel (Perl's ``$poe_kernel``).
poe_kernel = Kernel()
set_current_kernel(poe_kernel)
