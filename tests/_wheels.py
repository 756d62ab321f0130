"""Helpers for the I/O and wheel tests: a bounded run loop, session builders."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kernelish import HandlerArgs, Session, poe_kernel

__all__ = ["run_until", "session"]

TICK = 0.02


def run_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> None:
    """Run timeslices until ``predicate()`` is true; fail after ``timeout``.

    A ticker session wakes the loop every TICK seconds so a timeslice never
    blocks past the deadline; it ends itself when the wait is over.
    """
    done = [False]

    def tick(_: HandlerArgs) -> None:
        if not done[0]:
            _.kernel.delay("tick", TICK)

    Session.create(inline_states={"_start": tick, "tick": tick})
    deadline = time.monotonic() + timeout
    try:
        while not predicate():
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            if not poe_kernel.run_one_timeslice():
                break
    finally:
        done[0] = True
    assert predicate(), f"kernel ended before {what}"


def session(**states: Callable[[HandlerArgs], Any]) -> Session:
    """Create a session from inline states (``_start`` required)."""
    created = Session.create(inline_states=states)
    assert created is not None
    return created
