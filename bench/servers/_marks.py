"""Where a post-forked child spends its page faults and CPU, step by step.

Imported before kernelish, so that in a child its at-fork hook runs before
the kernel's (hooks run in the order they were registered): the first
step, ``kernel``, is then the kernel's own re-initialisation.  After
``watch_forks(path)``, :func:`mark` records in each child (step, minor
faults, CPU seconds, wall seconds since the parent called ``fork()``); the
child appends them as one JSON line to ``path`` at exit, and the parent
appends ``{"fork_s": [...]}``, the duration of each of its ``fork()``
calls.  Unwatched, a mark costs one global lookup.
"""

from __future__ import annotations

import atexit
import json
import os
import time

_path: str | None = None
_marks: list[tuple[str, int, float, float]] = []
_forked_at = 0.0
_fork_s: list[float] = []


def _faults() -> int:
    with open("/proc/self/stat", "rb") as fh:
        return int(fh.read().rsplit(b")", 1)[1].split()[7])  # minflt


def mark(step: str) -> None:
    """Record ``step`` in a watched child; nothing otherwise."""
    if _path is not None and _marks:
        _marks.append((step, _faults(), time.process_time(), time.perf_counter() - _forked_at))


def _before() -> None:
    global _forked_at
    _forked_at = time.perf_counter()


def _in_parent() -> None:
    if _path is not None:
        _fork_s.append(time.perf_counter() - _forked_at)


def _in_child() -> None:
    if _path is None:
        return
    _fork_s.clear()
    _marks.clear()
    _marks.append(("fork", _faults(), time.process_time(), time.perf_counter() - _forked_at))
    atexit.register(_write_child)  # runs before the Daemon's lean exit (registered earlier)


def _append(record: object) -> None:
    assert _path is not None
    fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


def _write_child() -> None:
    mark("exit")
    _append([list(m) for m in _marks])


def child_exit() -> None:
    """A child about to leave with ``os._exit`` (no atexit runs): write its
    record now, the ``exit`` step ending here."""
    if _path is not None and _marks:
        atexit.unregister(_write_child)
        _write_child()


def _write_parent() -> None:
    if _fork_s:
        _append({"fork_s": _fork_s})


def watch_forks(path: str) -> None:
    """Record the steps of every child forked from now on into ``path``."""
    global _path
    _path = path
    atexit.register(_write_parent)


os.register_at_fork(before=_before, after_in_parent=_in_parent, after_in_child=_in_child)
