"""Helpers for the Run tests: a session that runs one child and records
every event the wheel and ``sig_child`` deliver."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kernelish import HEAP, KERNEL, HandlerArgs, Session
from kernelish.wheels import Run

from ._wheels import run_until

__all__ = ["EVENTS", "Child", "exit_code", "run_child", "start_child"]

#: Every event of the wheel, named after its parameter.
EVENTS = {
    "StdoutEvent": "stdout",
    "StderrEvent": "stderr",
    "StdinEvent": "stdin",
    "ErrorEvent": "error",
    "CloseEvent": "close",
}


@dataclass
class Child:
    """What one child's session saw, in order."""

    trace: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    #: the wheel, held weakly: the session's heap owns it
    wheel_ref: Callable[[], Run | None] = lambda: None
    pid: int = 0
    wheel_id: int = 0
    status: int | None = None
    closed: bool = False
    session: Session | None = None

    def records(self, event: str) -> list[Any]:
        """ARG0 of every ``event``."""
        return [args[0] for name, args in self.trace if name == event]

    def events(self) -> list[str]:
        return [name for name, _ in self.trace]

    def errors(self) -> list[tuple[Any, ...]]:
        return [args for name, args in self.trace if name == "error"]

    @property
    def wheel(self) -> Run | None:
        return self.wheel_ref()

    @property
    def done(self) -> bool:
        return self.closed and self.status is not None


def start_child(
    on_start: Callable[[HandlerArgs, Run], None] | None = None,
    handlers: dict[str, Callable[[HandlerArgs], Any]] | None = None,
    drop_on_close: bool = True,
    **params: Any,
) -> Child:
    """A session whose ``_start`` makes ``Run(**params)`` (every event named
    unless given) and watches the child with ``sig_child``."""
    child = Child()
    for param, event in EVENTS.items():
        snake = param[0].lower() + "".join(c if c.islower() else "_" + c.lower() for c in param[1:])
        if snake not in params:
            params.setdefault(param, event)
    params = {k: v for k, v in params.items() if v is not ...}

    def start(_: HandlerArgs) -> None:
        wheel = Run(**params)
        _[HEAP]["wheel"] = wheel
        child.wheel_ref = weakref.ref(wheel)
        child.pid, child.wheel_id = wheel.PID, wheel.ID
        _[KERNEL].sig_child(wheel.PID, "chld")
        if on_start is not None:
            on_start(_, wheel)

    def record(name: str) -> Callable[[HandlerArgs], Any]:
        extra = (handlers or {}).get(name)

        def handler(_: HandlerArgs) -> Any:
            child.trace.append((name, tuple(_.args)))
            if name == "close":
                child.closed = True
                if drop_on_close:
                    _[HEAP].pop("wheel", None)
            if extra is not None:
                return extra(_)
            return None

        return handler

    def chld(_: HandlerArgs) -> None:
        child.trace.append(("chld", tuple(_.args)))
        child.status = _.args[2]

    states: dict[str, Callable[[HandlerArgs], Any]] = {"_start": start, "chld": chld}
    for event in EVENTS.values():
        states[event] = record(event)
    for name, func in (handlers or {}).items():
        states.setdefault(name, func)
    child.session = Session.create(inline_states=states)
    return child


def run_child(timeout: float = 10.0, **params: Any) -> Child:
    """Run one child to its end: CloseEvent and its exit status."""
    child = start_child(**params)
    run_until(lambda: child.done, timeout, "CloseEvent and the exit status")
    return child


def exit_code(status: int | None) -> int | None:
    assert status is not None
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
