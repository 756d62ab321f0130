"""Fork safety by construction: one ``os.register_at_fork`` hook.

Discussion
----------
After ``os.fork()`` the child must not share anything with its parent that
would let one see the other's events (POE-SEMANTICS 4.8).  One
``os.register_at_fork`` hook per kernel does the work, so it happens for
every ``os.fork()`` -- from a handler, from top-level code, or from a library
-- before the child runs one more line of Python; ``has_forked()`` and the
pid checks in ``run()``/``stop()`` are only a fallback.  In the child:

* the selector -- an epoll set is an open file description shared across
  fork, so a watch the child added or removed would change the parent's; the
  child closes its copy of the epoll fd (closing never unregisters anything
  in the shared set) and builds a new selector with the same watches;
* the signal wakeup pipe -- a signal byte written by one process could be read
  by the other; the child gets a new pipe and points ``set_wakeup_fd`` at it.
  Every signal is blocked from just before ``fork()`` until the child's pipe
  is installed (``pthread_sigmask`` in the ``before`` hook, restored in a
  ``finally`` by both ``after`` hooks), so a signal sent to the child at once
  -- before its first timeslice -- stays pending and then lands in the new
  pipe instead of being lost in the parent's.  The Python handlers of watched
  signals are inherited, so the child's watchers keep working;
* the kernel ID -- a new one, with the new pid;
* children -- the parent's children are not the child's: pid watches are
  dropped and the references they held released (a session kept only by one
  is collected in the child), and SIGCHLD is unwatched unless someone watches
  ``CHLD``.

Sessions, queued events, timers, aliases, signal watchers and watched handles
are kept, as POE keeps them.  A handle watched in both processes is still one
open file: whoever reads first gets the data, so after a fork each side should
stop watching what belongs to the other (or call ``stop()`` in the child for a
fresh start).  ``has_forked()`` exists for ported code and does nothing when
the hook already ran.

What a user must still not do: fork while other threads run.  The child gets
only the forking thread; a lock another thread held (the logging module's,
an allocator's, one inside a library) stays locked forever, and the kernel's
hook cannot fix that.  ``os.register_at_fork`` hooks also do not run for
``subprocess`` (which execs at once, so nothing is shared) nor for a raw
``fork`` made from C code, where ``has_forked()`` must be called by hand.
Nor should a child keep using a handle the parent also reads.
"""

from __future__ import annotations

import _signal as _csignal  # type: ignore[import-not-found]
import os
import selectors
import signal as _signal
import sys
import weakref
from typing import Any

from ._children import ChildrenAPI
from ._core import log
from ._select import SelectAPI
from ._signals import WakeupPipe

# The C functions under signal.pthread_sigmask/valid_signals: the wrappers
# turn every signal of a mask into an enum member, 320 us for one block and
# restore of all signals against 3 us here -- paid on every fork, in both
# processes.
_ALL_SIGNALS: Any = _csignal.valid_signals()

__all__ = ["ForkSafety", "register_fork_hooks"]


class ForkSafety(ChildrenAPI, SelectAPI):
    """The kernel's half of fork safety; :func:`register_fork_hooks` wires it."""

    _fork_mask: set[int] | None = None

    def has_forked(self) -> None:
        """Re-initialise after a fork (``has_forked``).  The at-fork hook does
        this by itself; calling it again is harmless."""
        if os.getpid() != self._pid:
            self._after_fork_child()

    def _before_fork(self) -> None:
        # Hold signals until the child has its own wakeup pipe: a signal that
        # reached the child before that would be written to the parent's pipe.
        try:
            self._fork_mask = _csignal.pthread_sigmask(_signal.SIG_BLOCK, _ALL_SIGNALS)
        except (OSError, ValueError):  # pragma: no cover
            self._fork_mask = None

    def _restore_signal_mask(self) -> None:
        if self._fork_mask is not None:
            _csignal.pthread_sigmask(_signal.SIG_SETMASK, self._fork_mask)
            self._fork_mask = None

    def _asyncio_after_fork_child(self) -> None:  # pragma: no cover - AsyncioAPI's
        """Give the asyncio loop its own plumbing (see ``_asyncio``)."""

    def _after_fork_parent(self) -> None:
        self._have_children = True
        self._restore_signal_mask()

    def _after_fork_child(self) -> None:
        """The child's fresh start: selector, wakeup pipe, ID, no pid watches."""
        try:
            self._pid = os.getpid()
            self._id = self._make_id()
            try:
                self._selector.close()  # closes our copy; the parent's set is untouched
            except OSError:  # pragma: no cover
                pass
            old = self._wakeup
            old.close()
            self._wakeup = WakeupPipe()
            self._wakeup._previous = old._previous
            if old._installed:
                try:
                    _signal.set_wakeup_fd(self._wakeup.w, warn_on_full_buffer=False)
                    self._wakeup._installed = True
                except ValueError:  # pragma: no cover - not the main thread
                    log.warning("%d: cannot install the wakeup fd after fork", self._pid)
            self._new_selector()
            self._selector.register(self._wakeup.r, selectors.EVENT_READ, None)
            self._forget_children()
            self._last_poll = 0.0
            self._asyncio_after_fork_child()
        finally:
            # Whatever failed above, the child must not stay deaf to signals.
            self._restore_signal_mask()
        # No log line here: in a quiet child even a disabled log.debug costs
        # some 20 page faults (the logger hierarchy is the parent's).


def register_fork_hooks(kernel: ForkSafety) -> None:
    """Install the at-fork hooks for ``kernel`` (held weakly)."""
    if sys.version_info >= (3, 12):
        # asyncio's own at-fork hook (3.12+) clears the wakeup fd in the child;
        # child hooks run in the order they were registered, so it must be
        # registered before ours, which installs the child's new wakeup fd.
        import asyncio  # noqa: F401
    ref = weakref.ref(kernel)

    def before() -> None:
        k = ref()
        if k is not None:
            k._before_fork()

    def after_in_parent() -> None:
        k = ref()
        if k is not None:
            k._after_fork_parent()

    def after_in_child() -> None:
        k = ref()
        if k is not None:
            k._after_fork_child()

    os.register_at_fork(
        before=before, after_in_parent=after_in_parent, after_in_child=after_in_child
    )
