"""The public ``Kernel`` and the process's one instance, ``poe_kernel``.

The kernel is a handful of collaborators it owns, wired in ``__init__``:

======================  =======================================================
``_queue``              :class:`~._queue.EventQueue`: posts and timers, one order
``_core``               :class:`~._dispatch.Dispatcher`: sessions, lifetimes, the
                        one handler-invocation path, the dispatch loop, signals
                        over the session tree, POE's DIE rule
``_timers``             :class:`~._timers.Timers`: ``alarm*`` / ``delay*``
``_io``                 :class:`~._watchers.Watchers`: the selector and fd watches
``_signals``            :class:`~._signals.SignalHub`: signal watchers, the pyee
                        bus, OS signals through the wakeup pipe
``_reaper``             :class:`~._children.ChildReaper`: ``sig_child``, waitpid
``_fork``               :class:`~._fork.ForkGuard`: the at-fork hooks
``_bridge``             :class:`~._asyncio.AsyncioBridge` while ``run_async`` runs
======================  =======================================================

Each gets, at construction, the narrow callbacks it needs from the others;
none calls a sibling through a shared ``self``.  The ``Kernel`` class itself is
POE::Kernel's API (each call a few lines over its collaborator), the
timeslice, and the steps of a fork.  It is also the pseudo-session at the
root of the session tree (POE-SEMANTICS 0).

The timeslice (POE-SEMANTICS 5.3) in three steps: decide the timeout from the
queue head; wait on the selector and run the I/O callbacks; dispatch what was
due when the pass began.  One difference from POE, for throughput: while
posted events are waiting, the selector is polled at most every
:data:`POLL_INTERVAL` seconds instead of every slice, so a flood of posts
costs no system call per event but I/O and signals are still seen within
10 ms.
"""

from __future__ import annotations

import errno
import logging
import os
import signal as _signal
import socket
import time
import weakref
from collections.abc import Callable
from sys import _getframe
from typing import TYPE_CHECKING, Any

from ._children import REAP_POLL_INTERVAL, ChildReaper
from ._dispatch import Dispatcher
from ._event import ET_CALL, ET_CHILD, ET_DEFERRED, ET_PARENT, ET_POST, ET_SIGCLD, ET_SIGNAL, Event
from ._fork import ForkGuard
from ._handlers import as_handler
from ._introspect import KernelView
from ._queue import EventQueue
from ._runtime import set_current_kernel
from ._session import Handler, Lifecycle, Node, Session
from ._signals import SignalBus, SignalHub
from ._timers import Timers
from ._watchers import MODE_READ, MODE_WRITE, Watchers, WatchEvent

if TYPE_CHECKING:
    from ._asyncio import AsyncioBridge

__all__ = ["POLL_INTERVAL", "Kernel", "poe_kernel"]

#: Longest time the selector goes unpolled while posted events keep coming.
POLL_INTERVAL = 0.008  # 2 ms of slack for the pass in flight: gaps stay <= 10 ms

ESRCH = errno.ESRCH
EPERM = errno.EPERM
EEXIST = errno.EEXIST
EINVAL = errno.EINVAL

_ALIVE = Lifecycle.ALIVE
_STOPPING = Lifecycle.STOPPING
_HOSTNAME = socket.gethostname()

log = logging.getLogger("kernelish")


class Kernel(Node):
    """POE's kernel (port of POE::Kernel); use the process's ``poe_kernel``.

    The clock is injectable (``Kernel(clock=...)``): run a kernel of your
    own with :func:`kernelish.using_kernel` and step
    :meth:`run_one_timeslice` on a manual clock.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._pid = os.getpid()
        self._id_seq = 0
        self._id: str | None = self._make_id()
        #: Python's face of Perl's ``$!``: the errno of the last failed call.
        self.last_error = 0
        self._last_poll = 0.0
        self._bridge: AsyncioBridge | None = None
        # The collaborators, and the callbacks each one is given.
        self._queue = EventQueue()
        self._signals = SignalHub(child_interest_changed=self._child_interest_changed)
        self._reaper = ChildReaper(
            catch_sigchld=self._catch_sigchld,
            chld_watched=self._chld_watched,
            unref=self._unref,
        )
        self._core = Dispatcher(
            self,
            self._queue,
            self._signals,
            clock=clock,
            release_resources=self._release_resources,
            is_idle=self._is_idle,
            reaper=self._reaper,
        )
        self._io = Watchers(
            run_state=self._core.run_state,
            run_callable=self._core.run_callable,
            unref=self._core.table.unref,
            on_wakeup=self._drain_signals,
        )
        self._io.watch_wakeup(self._signals.wakeup.r)
        self._timers = Timers(self, self._core)
        self._fork = ForkGuard(in_parent=self._after_fork_parent, in_child=self._after_fork_child)
        #: The pyee bus of named signals: session watchers and plain callables.
        self.events: SignalBus = self._signals.events
        # A kernel of a test or a library is thrown away: its fds go with it.
        weakref.finalize(self, _close_collaborators, self._io, self._signals)

    def __repr__(self) -> str:
        return f"<Kernel {self.ID}>"

    # -- identity -------------------------------------------------------------

    def _make_id(self) -> str:
        self._id_seq += 1
        return f"{_HOSTNAME}-{int(time.time()):08x}-{os.getpid():08x}-{self._id_seq:08x}"

    @property
    def ID(self) -> str:
        """The kernel's ID: a string unique to this process (``$poe_kernel->ID``).
        A forked child makes its own when first asked (see _after_fork_child)."""
        kernel_id = self._id
        if kernel_id is None:
            kernel_id = self._id = self._make_id()
        return kernel_id

    @staticmethod
    def strerror(code: int) -> str:
        """Text for an errno held in :attr:`last_error` (Perl's ``"$!"``)."""
        return os.strerror(code) if code else ""

    # -- destinations -------------------------------------------------------

    def _resolve(self, dest: Any) -> Node | None:
        """POE's destination resolution: session, ID, alias, the kernel."""
        core = self._core
        if isinstance(dest, Session):
            state = dest._lifecycle
            return dest if state is _ALIVE or state is _STOPPING else None
        if isinstance(dest, str):
            if dest.isdigit():
                found = core.table.by_id.get(int(dest))
                if found is not None:
                    return found
            if dest == self._id:
                return self if core.alive else None
            return core.table.aliases.get(dest)
        if isinstance(dest, int) and not isinstance(dest, bool):
            return core.table.by_id.get(dest)
        if dest is self:
            return self if core.alive else None
        return None

    # -- posting and calling ------------------------------------------------

    def post(self, dest: Any, event: str, *args: Any) -> bool:
        """Queue ``event`` for ``dest`` (a session, ID or alias); True, or
        False with :attr:`last_error` = ESRCH (``$kernel->post``)."""
        core = self._core
        # The common destinations first; _resolve does POE's full order.
        cls = dest.__class__
        if cls is Session and dest._lifecycle is _ALIVE:
            target: Node | None = dest
        elif cls is str and not dest.isdigit() and dest in core.table.aliases:
            target = core.table.aliases[dest]
        else:
            target = self._resolve(dest)
            if target is None:
                self.last_error = ESRCH
                return False
        # Dispatcher.enqueue, inlined (the hot path); the caller site is
        # recorded as code object + instruction offset (see caller_site).
        frame = _getframe(1)
        source = core.active_session
        queue = self._queue
        ev = Event()  # new_event, inlined
        ev.priority = core.clock()
        ev.id = next(queue.ids)
        ev.dest = target  # type: ignore[assignment]
        ev.source = source
        ev.name = event
        ev.args = args
        ev.etype = ET_POST
        ev.file = frame.f_code
        ev.line = frame.f_lasti
        ev.from_state = core.active_event
        ev.cancelled = False
        queue.fifo.append(ev)
        # SessionTable.hold, inlined.
        if not target._to:  # type: ignore[union-attr]
            core.table.marked.pop(target, None)  # type: ignore[arg-type]
        target._to += 1  # type: ignore[union-attr]
        if source is not target:
            if not source._from:
                core.table.marked.pop(source, None)
            source._from += 1
        if source is self and self._bridge is not None:
            self._bridge.kick()  # posted from asyncio code
        return True

    def yield_(self, event: str, *args: Any) -> None:
        """Post ``event`` to the active session (``$kernel->yield``; ``yield``
        is a Python keyword).  Returns None, as POE's does."""
        core = self._core
        session = core.active_session
        if session is self:
            return
        frame = _getframe(1)
        queue = self._queue
        ev = Event()  # new_event, inlined
        ev.priority = core.clock()
        ev.id = next(queue.ids)
        ev.dest = session
        ev.source = session
        ev.name = event
        ev.args = args
        ev.etype = ET_POST
        ev.file = frame.f_code
        ev.line = frame.f_lasti
        ev.from_state = core.active_event
        ev.cancelled = False
        queue.fifo.append(ev)
        if not session._to:
            core.table.marked.pop(session, None)  # rescued (see SessionTable.hold)
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
        core = self._core
        frame = _getframe(1)
        file, line = frame.f_code.co_filename, frame.f_lineno
        active = core.active_session
        if target is active:
            return core.self_call(target, event, args, file, line)
        before = core.pending_error
        ret = core.invoke(target, event, args, active, file, line, core.active_event, ET_CALL)
        if active is self and self._bridge is not None:
            self._bridge.kick()  # called from asyncio code: queued work may follow
        if core.pending_error is not None and core.pending_error is not before:
            core.raise_pending()
        return ret

    # -- the extension interface: wheels and components ----------------------

    @property
    def io(self) -> Watchers:
        """The I/O watchers, for wheels: ``kernel.io.watch(session, handle,
        mode, callback, weak=True, ...)`` and ``kernel.io.unwatch(fd, mode,
        callback)`` (see :class:`~kernelish._watchers.Watchers`)."""
        return self._io

    def deliver(self, session: Node, event: str, args: tuple[Any, ...]) -> Any:
        """Run ``session``'s handler for ``event`` now, as POE's
        ``$kernel->call($session, $event, @args)`` made by the session
        itself -- how a wheel delivers its events.  None if the session is
        gone."""
        return self._core.deliver(session, event, args)

    def run_as(self, session: Node, func: Callable[..., Any], *args: Any) -> Any:
        """Run ``func(*args)`` as ``session``, an exception in it taking
        POE's DIE path as a handler's would."""
        return self._core.run_callable(session, func, *args)

    def defer(self, session: Node, func: Callable[[], Any], seconds: float | None = None) -> int:
        """Run ``func()`` as ``session`` in the next dispatch pass, or
        ``seconds`` from now; the queued call keeps the session alive like
        any event.  Returns its ID (for :meth:`cancel_deferred`)."""
        if seconds is None:
            label = getattr(func, "__name__", "<deferred>")
            return self._core.enqueue(session, session, label, (func,), ET_DEFERRED).id
        return self._timers.defer(session, func, seconds)

    def cancel_deferred(self, deferred_id: int) -> None:
        """Cancel a call :meth:`defer` queued with a delay (a no-op once it ran)."""
        self._timers.cancel_deferred(deferred_id)

    @property
    def introspection(self) -> KernelView:
        """A read-only view of the kernel's tables (what :mod:`kernelish.peek`
        is built on)."""
        return KernelView(self, self._core, self._queue, self._io, self._signals, self._reaper)

    # -- timers (POE-SEMANTICS 1.3) -------------------------------------------

    # The calls that add a timer go straight to Timers.add: a handler setting
    # 100k timers in a loop pays for one frame less each (bench/timers.py).

    def alarm(self, name: str, epoch: float | None = None, *args: Any) -> int:
        """Clear this session's timers named ``name``, then set one at ``epoch``
        (``$kernel->alarm``).  Returns 0, or EINVAL when ``name`` is None."""
        if name is None:
            return EINVAL
        timers = self._timers
        timers.clear_named(name)
        if epoch is not None:
            timers.add(self._core.active_session, name, epoch - timers.epoch_offset(), args)
        return 0

    def alarm_add(self, name: str, epoch: float, *args: Any) -> int:
        """Add a timer at ``epoch`` without clearing others (``alarm_add``)."""
        if name is None or epoch is None:
            return EINVAL
        timers = self._timers
        timers.add(self._core.active_session, name, epoch - timers.epoch_offset(), args)
        return 0

    def delay(self, name: str, seconds: float | None = None, *args: Any) -> int:
        """Clear this session's timers named ``name``, then set one ``seconds``
        from now (``$kernel->delay``); without ``seconds`` only clears."""
        if name is None:
            return EINVAL
        self._timers.clear_named(name)
        if seconds is not None:
            core = self._core
            self._timers.add(core.active_session, name, core.clock() + seconds, args)
        return 0

    def delay_add(self, name: str, seconds: float, *args: Any) -> int:
        """Add a timer ``seconds`` from now without clearing others."""
        if name is None or seconds is None:
            return EINVAL
        core = self._core
        self._timers.add(core.active_session, name, core.clock() + seconds, args)
        return 0

    def alarm_set(self, name: str, epoch: float, *args: Any) -> int | None:
        """Add a timer at ``epoch``; returns its ID (``alarm_set``)."""
        if name is None or epoch is None:
            self.last_error = EINVAL
            return None
        timers = self._timers
        return timers.add(self._core.active_session, name, epoch - timers.epoch_offset(), args).id

    def delay_set(self, name: str, seconds: float, *args: Any) -> int | None:
        """Add a timer ``seconds`` from now; returns its ID (``delay_set``)."""
        if name is None or seconds is None:
            self.last_error = EINVAL
            return None
        core = self._core
        return self._timers.add(core.active_session, name, core.clock() + seconds, args).id

    def alarm_remove(self, timer_id: int) -> tuple[str, float, list[Any]] | None:
        """Remove a timer by ID; returns ``(name, due_epoch, args)``."""
        return self._timers.alarm_remove(timer_id)

    def alarm_adjust(self, timer_id: int, delta: float) -> float | None:
        """Move a timer by ``delta`` seconds; returns its new due epoch."""
        return self._timers.alarm_adjust(timer_id, delta)

    def delay_adjust(self, timer_id: int, seconds: float) -> float | None:
        """Reschedule a timer to ``seconds`` from now; returns the due epoch."""
        return self._timers.delay_adjust(timer_id, seconds)

    def alarm_remove_all(self) -> list[tuple[Any, ...]]:
        """Remove every timer of this session; returns ``(name, due_epoch,
        *args)`` for each (``alarm_remove_all``)."""
        return self._timers.alarm_remove_all()

    def get_next_event_time(self) -> float | None:
        """Due epoch of the next queued event, or None (undocumented POE)."""
        head = self._queue.head_priority()
        return None if head is None else head + self._timers.epoch_offset()

    def get_event_count(self) -> int:
        """Number of queued events (undocumented POE ``get_event_count``)."""
        return len(self._queue)

    # -- I/O watchers (POE-SEMANTICS 1.9) -------------------------------------

    def select_read(self, handle: Any, event: WatchEvent | None = None, *extra: Any) -> int:
        """Watch ``handle`` for reading (``$kernel->select_read``); without
        ``event``, stop.  ARG0 = handle, ARG1 = 0, ARG2.. = ``extra``.
        Returns 0, as POE's does."""
        self._select(self._core.active_session, handle, MODE_READ, event, extra)
        return 0

    def select_write(self, handle: Any, event: WatchEvent | None = None, *extra: Any) -> int:
        """Watch ``handle`` for writing (``$kernel->select_write``); returns 0."""
        self._select(self._core.active_session, handle, MODE_WRITE, event, extra)
        return 0

    def select(
        self,
        handle: Any,
        ev_read: WatchEvent | None = None,
        ev_write: WatchEvent | None = None,
        *extra: Any,
    ) -> int:
        """Set or clear the read and write watches at once (``select``);
        returns 0."""
        session = self._core.active_session
        self._select(session, handle, MODE_READ, ev_read, extra)
        self._select(session, handle, MODE_WRITE, ev_write, extra)
        return 0

    def _select(
        self,
        session: Node,
        handle: Any,
        mode: int,
        event: WatchEvent | None,
        extra: tuple[Any, ...],
    ) -> None:
        if event is None:
            self._io.forget(handle, mode)
        else:
            self._io.watch(session, handle, mode, event, extra)

    def select_pause_read(self, handle: Any) -> int:
        """Stop the OS-level read watch, keep the bookkeeping (and the
        session's reference); 1 if watched for reading, else 0."""
        return self._io.pause(handle, MODE_READ, True)

    def select_resume_read(self, handle: Any) -> int:
        """Resume a paused read watch; 1 if watched for reading, else 0."""
        return self._io.pause(handle, MODE_READ, False)

    def select_pause_write(self, handle: Any) -> int:
        """Stop the OS-level write watch; 1 if watched for writing, else 0."""
        return self._io.pause(handle, MODE_WRITE, True)

    def select_resume_write(self, handle: Any) -> int:
        """Resume a paused write watch; 1 if watched for writing, else 0."""
        return self._io.pause(handle, MODE_WRITE, False)

    # -- signals (POE-SEMANTICS 4) --------------------------------------------

    def sig(self, name: str, event: str | Handler | None = None, *extra: Any) -> None:
        """Watch signal ``name`` with state ``event`` (``$kernel->sig``).

        ``event`` may also be a callable, which then runs as this session's
        handler.  ``sig(name)`` stops watching.  The name has no ``SIG``
        prefix.  Watchers do not keep a session alive (POE 1.370).
        """
        session = self._core.active_session
        if session is self:
            log.warning("%d: sig(%r) called outside any session; ignored", os.getpid(), name)
            return
        old = session._sig_watchers.get(name)
        if old is not None and old.event.startswith("<sig "):
            session._states.pop(old.event, None)
        if event is not None and callable(event):
            state = f"<sig {name}>"
            session._states[state] = (as_handler(event), None)
            event = state
        self._signals.watch(session, name, event, extra)

    def sig_handled(self) -> None:
        """Mark the signal being dispatched as handled (``sig_handled``)."""
        self._core.sig_handled()

    def signal(self, dest: Any, name: str, *args: Any) -> bool:
        """Queue signal ``name`` for ``dest`` and its descendants; the kernel
        as ``dest`` is a broadcast (``$kernel->signal``).  False + ESRCH when
        ``dest`` does not resolve."""
        target = self._resolve(dest)
        if target is None:
            self.last_error = ESRCH
            return False
        core = self._core
        core.enqueue(target, core.active_session, "_signal", (name, *args), ET_SIGNAL)
        if core.active_session is self and self._bridge is not None:
            self._bridge.kick()
        return True

    def signal_watchers(self, name: str) -> dict[Node, str]:
        """Sessions watching ``name`` and their events (Peek's
        ``signal_watchers``; the seed's ``expedite_signal`` calls them)."""
        return {
            node: w.event
            for node, w in self._signals.watchers(name).items()
            if node._lifecycle is _ALIVE
        }

    def sig_child(self, pid: int, event: str | None = None, *extra: Any) -> None:
        """Watch child ``pid`` once: ``event`` gets ``('CHLD', pid, status,
        *extra)`` when it is reaped (``$kernel->sig_child``).  Without
        ``event``, stop watching it (only if this session watches it)."""
        session = self._core.active_session
        if not isinstance(session, Session):
            return
        if event is None:
            self._reaper.unwatch(session, pid)
        else:
            self._reaper.watch(session, pid, event, extra)

    def _catch_sigchld(self, wanted: bool) -> None:
        self._signals.set_os_handler(_signal.SIGCHLD, wanted)

    def _chld_watched(self) -> bool:
        return self._signals.watched("CHLD")

    def _child_interest_changed(self) -> None:
        self._reaper.interest_changed()

    def _unref(self, node: Node) -> None:
        self._core.table.unref(node)

    def _drain_signals(self) -> None:
        """The wakeup pipe was readable: queue a ``_signal`` per signal."""
        names, chld = self._signals.drain()
        if chld:
            self._reaper.reap_needed = True
        for name in names:
            self._core.enqueue(self, self, "_signal", (name,), ET_SIGNAL)

    def _reap(self) -> None:
        """Reap exited children: their ``sig_child`` events, then ``CHLD``."""
        core = self._core
        for pid, status, ended in self._reaper.reap(core.clock()):
            for session, event, extra in ended:
                # The queued event holds the session now (its "to" reference).
                core.enqueue(session, self, event, ("CHLD", pid, status, *extra), ET_SIGCLD)
                session._refs -= 1
            core.enqueue(self, self, "_signal", ("CHLD", pid, status), ET_SIGNAL)

    def _poll_wakeup(self) -> bool:
        """Drain the wakeup pipe now, before the kernel calls itself idle.

        The idle check comes before the selector poll in a timeslice; without
        this, a signal already written to the pipe (sent by a handler, or
        arriving while one ran) would lose the race to the IDLE signal that
        ends the program.  True if that queued anything."""
        queue = self._queue
        before = len(queue)
        self._drain_signals()
        if self._reaper.reap_needed:
            self._reap()
        return len(queue) != before

    def _restore_os_signals(self) -> None:
        self._signals.restore()
        self._reaper.restore()

    # -- aliases and IDs ----------------------------------------------------

    def alias_set(self, name: str) -> int:
        """Give the active session an alias; 0, or EEXIST if another session
        has it (``alias_set``)."""
        session = self._core.active_session
        if session is self:
            return EPERM
        return self._core.table.set_alias(session, name)

    def alias_remove(self, name: str) -> int:
        """Remove an alias of the active session; 0, ESRCH or EPERM."""
        return self._core.table.remove_alias(self._core.active_session, name)

    def alias_resolve(self, name: Any) -> Node | None:
        """The session an alias, ID or session names, or None."""
        return self._resolve(name)

    def alias_list(self, session: Any = None) -> list[str]:
        """A session's aliases, sorted (``alias_list``)."""
        node = self._core.active_session if session is None else self._resolve(session)
        if node is None:
            self.last_error = ESRCH
            return []
        return sorted(node._aliases)

    def ID_id_to_session(self, session_id: int | str) -> Node | None:
        """The session with this ID (or the kernel for its ID string), or
        None with ESRCH (``ID_id_to_session``)."""
        node: Node | None = None
        if isinstance(session_id, int) or (isinstance(session_id, str) and session_id.isdigit()):
            node = self._core.table.by_id.get(int(session_id))
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

    def get_active_session(self) -> Node:
        """The session whose handler runs now; the kernel outside handlers."""
        return self._core.active_session

    def get_active_event(self) -> str | None:
        """The event being handled now; None outside handlers."""
        return self._core.active_event

    # -- states ---------------------------------------------------------------

    def state(self, name: str, handler: Any = None, method: str | None = None) -> int:
        """Add, replace (``handler`` given) or remove a state of the active
        session (``$kernel->state``).  ``handler`` is a function, or an
        object or class whose ``method`` (default ``name``) handles it."""
        session = self._core.active_session
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
        table = self._core.table
        session = table.by_id.get(session_id) if isinstance(session_id, int) else None
        if session is None:
            self.last_error = ESRCH
            return None
        return table.add_extref(session, tag)

    def refcount_decrement(self, session_id: int, tag: str) -> int | None:
        """Take one from a session's extra-reference ``tag``; returns its count."""
        table = self._core.table
        session = table.by_id.get(session_id) if isinstance(session_id, int) else None
        count = None if session is None else table.drop_extref(session, tag)
        if count is None:
            self.last_error = ESRCH
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

    def _create_session(
        self,
        cls: type[Session],
        states: dict[str, tuple[Handler, Any]],
        heap: Any,
        args: tuple[Any, ...],
        options: dict[str, Any],
    ) -> Session | None:
        """``Session.create`` on this kernel."""
        return self._core.create_session(cls, states, heap, args, options)

    def detach_myself(self) -> bool:
        """Make the active session a child of the kernel (``detach_myself``).
        False with EPERM if it already is one."""
        core = self._core
        session = core.active_session
        if not isinstance(session, Session) or session._parent is self:
            self.last_error = EPERM
            return False
        old = session._parent
        assert old is not None
        if core.active_event != "_start":
            core.invoke(old, "_child", ("lose", session, None), self, None, None, None, ET_CHILD)
        core.invoke(session, "_parent", (old, self), self, None, None, None, ET_PARENT)
        core.table.reparent(session, self)
        return True

    def detach_child(self, child: Any) -> bool:
        """Hand a child of the active session to the kernel (``detach_child``)."""
        node = self._resolve(child)
        if node is None:
            self.last_error = ESRCH
            return False
        core = self._core
        parent = core.active_session
        if not isinstance(node, Session) or node._parent is not parent or parent is self:
            self.last_error = EPERM
            return False
        core.invoke(parent, "_child", ("lose", node, None), self, None, None, None, ET_CHILD)
        core.invoke(node, "_parent", (parent, self), self, None, None, None, ET_PARENT)
        core.table.reparent(node, self)
        return True

    def _release_resources(self, session: Session) -> None:
        """What a stopping session held, released in one fixed order:
        handles, signal watchers, child watches (POE-SEMANTICS 3.3)."""
        # Most sessions hold none of them by the time they stop.
        if session._fds:
            self._io.release(session)
        if session._sig_watchers:
            self._signals.release(session)
        if session._pids:
            self._reaper.release(session)

    # -- running ------------------------------------------------------------

    def _is_idle(self) -> bool:
        core = self._core
        return (
            core.alive
            and not len(self._queue)
            and not len(self._io)
            and not core.table.extref_tags
            and not self._reaper.waiting()
        )

    def _timeslice(self, run_on: bool = False, max_timeout: float = 3600.0) -> None:
        """One POE timeslice (POE-SEMANTICS 5.3): the idle check, the
        timeout from the queue head, the selector poll and its I/O
        callbacks, then the dispatch pass.  With ``run_on`` (``run()``), the
        pass goes on with further passes while posts keep coming, until the
        next poll is due."""
        core = self._core
        queue = self._queue
        reaper = self._reaper
        io = self._io
        # A watched fd already means "not idle": spare a server the rest.
        if not len(io) and not len(queue) and self._is_idle() and not self._poll_wakeup():
            core.enqueue(self, self, "_signal", ("IDLE",), ET_SIGNAL)
        now = core.clock()
        if queue.has_live_post():
            timeout = 0.0
        else:
            head = queue.head_priority()
            timeout = 3600.0 if head is None else min(max(head - now, 0.0), 3600.0)
            if reaper.catching and timeout > REAP_POLL_INTERVAL:
                # The reaper's safety net needs the loop to come round.
                timeout = REAP_POLL_INTERVAL
        if timeout > max_timeout:
            timeout = max_timeout  # under asyncio the loop does the waiting
        if timeout > 0.0 or not max_timeout or now - self._last_poll >= POLL_INTERVAL:
            ready = io.poll(timeout)
            self._last_poll = core.clock()
            if ready:
                io.fire(ready)
                if core.table.marked:
                    core.sweep()
        if reaper.reap_needed or (reaper.catching and now - reaper.last_reap >= REAP_POLL_INTERVAL):
            self._reap()
        now = core.clock()
        timers = queue.timer_head
        # Nothing queued and no timer due (a timeslice that only did I/O, as
        # a server's often do): the dispatch pass would find nothing.
        if queue.fifo or queue.pending or (timers and timers[0][0] <= now):
            core.dispatch_due(now, self._last_poll + POLL_INTERVAL if run_on else None)

    def run(self) -> None:
        """Dispatch events until no session is left (``$poe_kernel->run``).

        Returns when the kernel's IDLE signal finds nothing left to do; an
        unhandled exception from a handler (POE's DIE) is re-raised here.
        """
        self.has_forked()
        core = self._core
        if not core.alive:
            return
        try:
            _signal.signal(_signal.SIGPIPE, _signal.SIG_IGN)
        except ValueError:  # pragma: no cover - not the main thread
            pass
        try:
            while core.alive:
                self._timeslice(True)
        finally:
            if not core.alive:
                self._restore_os_signals()
        core.raise_pending()

    def run_one_timeslice(self) -> bool:
        """Run exactly one timeslice; False once no session is left."""
        self.has_forked()
        core = self._core
        if not core.alive:
            self._restore_os_signals()
            core.raise_pending()
            return False
        self._timeslice()
        core.raise_pending()
        return True

    def run_while(self, flag: Callable[[], bool]) -> None:
        """Run timeslices while ``flag()`` is true (``run_while``)."""
        while flag() and self.run_one_timeslice():
            pass

    def stop(self) -> None:
        """Stop every session now, each getting ``_stop`` (``$kernel->stop``);
        ``run()`` then returns at the next idle check."""
        core = self._core
        core.stop_all(core.active_session)
        core.active_session = self
        if core.table.marked:
            core.sweep()
        self.has_forked()

    def reset(self) -> None:
        """Back to a kernel with no session, no queued event, no pending
        error and no caught signal (kernelish: a test's clean slate, or a
        program that runs the kernel again from scratch)."""
        core = self._core
        if core.table.by_id or core.alive:
            self.stop()
            core.stop_kernel()
        core.pending_error = None
        self._restore_os_signals()
        core.active_session = self
        core.active_event = None
        self.last_error = 0

    async def run_async(self) -> None:
        """Run the kernel inside the running asyncio loop until no session
        is left (``run()`` for asyncio programs).  Unhandled handler
        exceptions are re-raised here, as ``run()`` does."""
        from ._asyncio import run_async

        await run_async(self)

    async def call_async(self, dest: Any, event: str, *args: Any) -> Any:
        """``call()`` from asyncio code; a coroutine handler's result is
        awaited."""
        from ._asyncio import call_async

        return await call_async(self, dest, event, *args)

    # -- fork safety (see _fork) ----------------------------------------------

    def has_forked(self) -> None:
        """Re-initialise after a fork (``has_forked``).  The at-fork hook does
        this by itself; calling it again is harmless."""
        if os.getpid() != self._pid:
            self._after_fork_child()

    def _after_fork_parent(self) -> None:
        self._reaper.have_children = True

    def _after_fork_child(self) -> None:
        """The child's fresh start: ID, wakeup pipe, selector, no children.

        The new ID is made when first asked (``ID``): most children never ask,
        and the formatting costs a child some 20 page faults.  Until then no
        string names the child's kernel -- the parent's ID no longer does."""
        self._pid = os.getpid()
        self._id = None
        wakeup_fd = self._signals.renew_wakeup()
        self._io.renew_selector(wakeup_fd)
        self._reaper.forget()
        self._last_poll = 0.0
        if self._bridge is not None:
            self._bridge.after_fork_child()


def _close_collaborators(io: Watchers, signals: SignalHub) -> None:
    io.close()
    signals.close()


def _postback_gone(kernel_ref: weakref.ref[Kernel], session_id: int) -> None:
    kernel = kernel_ref()
    if kernel is not None:
        kernel.refcount_decrement(session_id, "anon_event")


#: The process's one kernel (Perl's ``$poe_kernel``).
poe_kernel = Kernel()
set_current_kernel(poe_kernel)
