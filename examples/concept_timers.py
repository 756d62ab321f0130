"""Timers: delay() keeps one timer per name, delay_set() returns ids to remove or adjust.

python examples/concept_timers.py
"""

from __future__ import annotations

import time

from kernelish import ARG0, HEAP, KERNEL, HandlerArgs, Session, poe_kernel

started = time.monotonic()


def _start(_: HandlerArgs) -> None:
    kernel, heap = _[KERNEL, HEAP]
    kernel.delay("tick", 0.02, 1)  # a named timer: delay("tick") again replaces it
    kept = kernel.delay_set("ring", 0.05, "kept")  # an id for this one timer
    dropped = kernel.delay_set("ring", 0.03, "removed")
    kernel.alarm_remove(dropped)  # it will never ring
    kernel.delay_adjust(kept, 0.06)  # now due 60 ms from now
    heap["ticks"] = 0


def tick(_: HandlerArgs) -> None:
    kernel, heap, n = _[KERNEL], _[HEAP], _[ARG0]
    heap["ticks"] = n
    print(f"{time.monotonic() - started:.2f}s tick {n}")
    if n < 3:
        kernel.delay("tick", 0.02, n + 1)


def ring(_: HandlerArgs) -> None:
    print(f"{time.monotonic() - started:.2f}s ring: {_[ARG0]}")


Session.create(inline_states={"_start": _start, "tick": tick, "ring": ring})
poe_kernel.run()  # returns when no timer is left
