"""Keeping a forked child cheap: copy-on-write pages stay shared.

Discussion
----------
After ``fork()`` the child shares every page of the parent's heap until one of
them writes to it.  CPython writes to an object whenever it touches it -- a
reference count, or the collector's bookkeeping in the object's header -- so a
child that walks the parent's objects copies the pages they sit on: memory
(USS) and time, since each copied page is a page fault (expensive in a VM).
Two walks are avoidable:

* the cyclic garbage collector: :func:`fork` freezes (``gc.freeze()``) every
  object the parent has before forking, so the child's collections never
  visit them; the parent unfreezes at once, and its own collections carry on
  as before;
* the interpreter's teardown at exit: module dictionaries cleared, every
  object freed, several full collections -- measured at about 200 ms of CPU
  for a child of a server with kernelish, pydantic and psutil loaded, for a
  child that served one request in a millisecond.  :func:`exit_lean` marks a
  Daemon child so that, when the interpreter exits normally, it flushes
  ``sys.stdout``/``sys.stderr`` and logging, then ends with ``os._exit``:
  the ``atexit`` handlers registered after ``kernelish.components.daemon``
  was imported have run, the teardown is skipped.  An uncaught exception
  keeps the normal exit (and its status); ``sys.exit(n)`` after ``run()`` in
  a child exits 0.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import sys
from collections.abc import Callable
from types import TracebackType

__all__ = ["exit_lean", "fork"]

_lean_pid = 0
_failed = False


def fork(fork_process: Callable[[], int]) -> int:
    """``fork_process()`` with the parent's objects frozen for the child."""
    gc.freeze()
    try:
        pid = fork_process()
    except BaseException:
        gc.unfreeze()
        raise
    if pid:
        gc.unfreeze()
    return pid


def exit_lean() -> None:
    """Make this process (a Daemon child) skip the interpreter teardown at exit."""
    global _lean_pid, _failed
    _lean_pid = os.getpid()
    _failed = False
    if getattr(sys.excepthook, "_kernelish_lean", False) is False:
        previous = sys.excepthook

        def excepthook(
            kind: type[BaseException], value: BaseException, tb: TracebackType | None
        ) -> None:
            global _failed
            _failed = True
            previous(kind, value, tb)

        excepthook._kernelish_lean = True  # type: ignore[attr-defined]
        sys.excepthook = excepthook


def _at_exit() -> None:
    if _lean_pid != os.getpid() or _failed:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass
    try:
        logging.shutdown()
    finally:
        os._exit(0)


# Registered when the component is imported: atexit runs handlers last-in
# first-out, so those the program registers later still run before this one.
atexit.register(_at_exit)
