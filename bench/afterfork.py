"""What a forked child pays before any kernelish code of its own runs.

Run: ``.venv/bin/python bench/afterfork.py [--forks 30]``.

``os.register_at_fork`` hooks run in the child in the order they were
registered.  This script registers a marking hook first, then imports the
modules that register hooks of their own -- ``threading`` (every program that
logs has it), ``logging``, ``random`` (imported by ``tempfile``, ``uuid`` and
``secrets``, which pydantic and psutil bring), then ``kernelish`` (the
kernel's fork-safety hook) and the Daemon component -- with a marking hook
after each.  Each child reports the page faults (copy-on-write copies, on a
machine where one costs about 5 us) and the CPU time between consecutive
marks, so each module's after-fork work is measured alone; the first row is
the cost of the fork itself up to the first Python hook (the OS and
CPython's own re-initialisation).  A warm-up hook right after the first mark
allocates objects of many sizes, so that the first pages of the allocator's
pools are not charged to whichever hook happens to allocate first.

The parent freezes the collector (``gc.freeze()``) around each fork, as the
Daemon does.  Every child is reaped before the next fork.
"""

from __future__ import annotations

import gc
import os
import sys
import time

_marks: list[tuple[str, int, float]] = []


def _faults() -> int:
    with open("/proc/self/stat", "rb") as fh:
        return int(fh.read().rsplit(b")", 1)[1].split()[7])  # minflt


def _mark(name: str) -> None:
    def record() -> None:
        _marks.append((name, _faults(), time.process_time()))

    os.register_at_fork(after_in_child=record)


def _warm_up() -> None:
    keep: list[object] = [tuple(range(k)) for k in range(1, 48)]
    keep += [{"k": i} for i in range(32)]
    keep += [object() for _ in range(64)]
    del keep


_mark("fork() to the first Python hook (OS, CPython)")
os.register_at_fork(after_in_child=_warm_up)
_mark("warm-up allocations (charged to no module)")
import threading  # noqa: E402,F401

_mark("threading's after-fork hook")
import logging  # noqa: E402,F401

_mark("logging's after-fork hook")
import random  # noqa: E402,F401

_mark("random's after-fork hook (reseed)")
import kernelish  # noqa: E402

_mark("kernelish: the kernel's fork-safety hook")
import kernelish.components.daemon  # noqa: E402
import kernelish.filters  # noqa: E402
import kernelish.wheels  # noqa: E402,F401

_mark("the Daemon component, wheels, filters")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402

from _common import emit, table  # noqa: E402


def one_child() -> list[tuple[str, int, float]]:
    """Fork, let the child report its marks, reap it."""
    r, w = os.pipe()
    gc.freeze()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            # A child's fault counter starts at 0: the first mark's count is
            # the fork's own; each later one is charged to the hooks before it.
            rows = []
            prev_faults, prev_cpu = 0, _marks[0][2]
            for name, faults, cpu in _marks:
                rows.append((name, faults - prev_faults, (cpu - prev_cpu) * 1e3))
                prev_faults, prev_cpu = faults, cpu
            os.write(w, json.dumps(rows).encode())
            code = 0
        finally:
            os._exit(code)
    gc.unfreeze()
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    return [tuple(row) for row in json.loads(b"".join(chunks))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forks", type=int, default=30)
    opts = parser.parse_args()
    children = [one_child() for _ in range(opts.forks)]
    total_faults = 0.0
    for i, (name, _f, _c) in enumerate(children[0]):
        faults = statistics.median(child[i][1] for child in children)
        cpu = statistics.median(child[i][2] for child in children)
        total_faults += faults
        emit(f"after fork: {name}", faults, "faults", cpu_ms=round(cpu, 3), group="afterfork")
    emit(
        "after fork: all of the above, as private memory",
        total_faults * os.sysconf("SC_PAGE_SIZE") / 1e6,
        "MB",
        group="afterfork",
    )
    table(f"A child's after-fork work, median of {opts.forks} forks, pid {os.getpid()}")


if __name__ == "__main__":
    main()
