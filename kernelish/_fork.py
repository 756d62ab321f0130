"""Fork safety by construction: one ``os.register_at_fork`` hook.

Discussion
----------
After ``os.fork()`` the child must not share anything with its parent that
would let one see the other's events (POE-SEMANTICS 4.8):

* the selector -- an epoll set is an open file description shared across
  fork, so a watch the child adds or removes would change the parent's; the
  child closes its copy of the fd (without unregistering anything) and builds
  a new selector with the same watches;
* the signal wakeup pipe -- a signal byte written by one process could be read
  by the other; the child gets a new pipe.  Signals are blocked from just
  before the fork until the child's pipe is installed, so a signal sent to the
  child in between is delivered to the new pipe, not lost in the parent's;
* the kernel ID -- a new one, with the new pid;
* children -- the parent's children are not the child's: pid watches are
  dropped and their sessions released.

Sessions, queued events, timers, aliases and watched handles are kept, as POE
keeps them.  ``has_forked()`` exists for ported code and is harmless.

What a user must still not do: fork while other threads run (the child gets
only the forking thread, and locks other threads held stay locked), or fork
from a signal subscriber called in the middle of a dispatch.
"""

from __future__ import annotations

import os
import selectors
import signal as _signal
import weakref

from ._children import ChildrenAPI
from ._core import log
from ._select import SelectAPI
from ._signals import WakeupPipe

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
            self._fork_mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
        except (OSError, ValueError):  # pragma: no cover
            self._fork_mask = None

    def _restore_signal_mask(self) -> None:
        if self._fork_mask is not None:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, self._fork_mask)
            self._fork_mask = None

    def _after_fork_parent(self) -> None:
        self._have_children = True
        self._restore_signal_mask()

    def _after_fork_child(self) -> None:
        """The child's fresh start: selector, wakeup pipe, ID, no pid watches."""
        self._pid = os.getpid()
        self._id = self._make_id()
        try:
            self._selector.close()
        except OSError:  # pragma: no cover
            pass
        old = self._wakeup
        old.close()
        self._wakeup = WakeupPipe()
        if old._installed:
            _signal.set_wakeup_fd(self._wakeup.w, warn_on_full_buffer=False)
            self._wakeup._installed = True
        self._new_selector()
        self._selector.register(self._wakeup.r, selectors.EVENT_READ, None)
        self._forget_children()
        self._last_poll = 0.0
        self._restore_signal_mask()
        log.debug("%d: kernel re-initialised after fork as %s", self._pid, self._id)


def register_fork_hooks(kernel: ForkSafety) -> None:
    """Install the at-fork hooks for ``kernel`` (held weakly)."""
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
