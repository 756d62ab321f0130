"""Fork safety by construction: one ``os.register_at_fork`` hook per kernel.

Discussion
----------
After ``os.fork()`` the child must not share anything with its parent that
would let one see the other's events (POE-SEMANTICS 4.8).  One
``os.register_at_fork`` hook per kernel does the work, so it happens for
every ``os.fork()`` -- from a handler, from top-level code, or from a library
-- before the child runs one more line of Python; ``has_forked()`` and the
pid checks in ``run()``/``stop()`` are only a fallback.  In the child the
kernel (``Kernel._after_fork_child``) gives itself:

* a new selector -- an epoll set is an open file description shared across
  fork, so a watch the child added or removed would change the parent's; the
  child closes its copy of the epoll fd (closing never unregisters anything
  in the shared set) and builds a new selector with the same watches;
* a new signal wakeup pipe -- a signal byte written by one process could be
  read by the other; the child points ``set_wakeup_fd`` at its own pipe.
  Every signal is blocked from just before ``fork()`` until the child's pipe
  is installed (``pthread_sigmask`` in the ``before`` hook, restored in a
  ``finally`` by both ``after`` hooks), so a signal sent to the child at once
  -- before its first timeslice -- stays pending and then lands in the new
  pipe instead of being lost in the parent's.  The Python handlers of watched
  signals are inherited, so the child's watchers keep working;
* a new kernel ID, with the new pid;
* no children -- the parent's children are not the child's: pid watches are
  dropped and the references they held released (a session kept only by one
  is collected in the child), and SIGCHLD is released unless someone watches
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
"""

from __future__ import annotations

import _signal as _csignal  # type: ignore[import-not-found]
import os
import signal as _signal
import sys
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["ForkGuard"]

# The C functions under signal.pthread_sigmask/valid_signals: the wrappers
# turn every signal of a mask into an enum member, 320 us for one block and
# restore of all signals against 3 us here -- paid on every fork, in both
# processes.
_ALL_SIGNALS: Any = _csignal.valid_signals()


class ForkGuard:
    """The at-fork hooks of one kernel: signals held across ``fork()``,
    then ``in_parent()`` or ``in_child()`` (the kernel's own steps).

    The hooks hold the guard weakly, so a kernel that is thrown away costs
    nothing at later forks (``os.register_at_fork`` cannot unregister).
    """

    def __init__(self, *, in_parent: Callable[[], None], in_child: Callable[[], None]) -> None:
        self._in_parent = in_parent
        self._in_child = in_child
        self._mask: Any = None
        _register(self)

    def before(self) -> None:
        """Hold signals until the child has its own wakeup pipe: a signal
        that reached the child before that would go to the parent's pipe."""
        try:
            self._mask = _csignal.pthread_sigmask(_signal.SIG_BLOCK, _ALL_SIGNALS)
        except (OSError, ValueError):  # pragma: no cover
            self._mask = None

    def after_in_parent(self) -> None:
        """The parent goes on: its own steps, then signals again."""
        try:
            self._in_parent()
        finally:
            self._restore_mask()

    def after_in_child(self) -> None:
        """The child's fresh start; whatever fails, it must not stay deaf to
        signals.  (No log line here: in a quiet child even a disabled
        ``log.debug`` costs some 20 page faults -- the logger hierarchy is
        the parent's.)"""
        try:
            self._in_child()
        finally:
            self._restore_mask()

    def _restore_mask(self) -> None:
        if self._mask is not None:
            _csignal.pthread_sigmask(_signal.SIG_SETMASK, self._mask)
            self._mask = None


def _register(guard: ForkGuard) -> None:
    if sys.version_info >= (3, 12):
        # asyncio's own at-fork hook (3.12+) clears the wakeup fd in the child;
        # child hooks run in the order they were registered, so it must be
        # registered before ours, which installs the child's new wakeup fd.
        import asyncio  # noqa: F401
    ref = weakref.ref(guard)

    def before() -> None:
        held = ref()
        if held is not None:
            held.before()

    def after_in_parent() -> None:
        held = ref()
        if held is not None:
            held.after_in_parent()

    def after_in_child() -> None:
        held = ref()
        if held is not None:
            held.after_in_child()

    os.register_at_fork(
        before=before, after_in_parent=after_in_parent, after_in_child=after_in_child
    )
