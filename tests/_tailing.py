"""A session with a FollowTail wheel that records its events, for the
FollowTail tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kernelish import HEAP, HandlerArgs
from kernelish.wheels import FollowTail

from ._wheels import run_until, session

__all__ = ["POLL", "Tail", "construct", "fds_under"]

#: The poll interval the tests use (POE's default is 1 s).
POLL = 0.02


class Tail:
    """``FollowTail(**params)`` in a session of its own, every event it
    emits recorded as ``(event, *args)`` -- the wheel ID checked and left
    out.  ``on_input`` / ``on_idle`` run inside the handlers, ``on_start``
    after the wheel is made; ``states`` are more states of the session."""

    def __init__(
        self,
        on_input: Callable[[HandlerArgs], Any] | None = None,
        on_idle: Callable[[HandlerArgs], Any] | None = None,
        on_start: Callable[[HandlerArgs], Any] | None = None,
        states: dict[str, Callable[[HandlerArgs], Any]] | None = None,
        **params: Any,
    ) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.wheel_id = 0
        params.setdefault("PollInterval", POLL)

        def start(_: HandlerArgs) -> None:
            wheel = FollowTail(
                InputEvent="input",
                ResetEvent="reset",
                ErrorEvent="error",
                IdleEvent="idle",
                **params,
            )
            params.clear()  # the wheel alone holds a Handle now
            _[HEAP]["wheel"] = wheel
            self.wheel_id = wheel.ID
            if on_start is not None:
                on_start(_)

        def recorder(name: str, hook: Callable[[HandlerArgs], Any] | None = None) -> Any:
            def handler(_: HandlerArgs) -> None:
                *args, wheel_id = _.args
                assert wheel_id == self.wheel_id, (name, _.args)
                self.events.append((name, *args))
                if hook is not None:
                    hook(_)

            return handler

        self.session = session(
            _start=start,
            input=recorder("input", on_input),
            reset=recorder("reset"),
            error=recorder("error"),
            idle=recorder("idle", on_idle),
            **(states or {}),
        )

    @property
    def wheel(self) -> FollowTail:
        wheel = self.session.heap["wheel"]  # type: ignore[attr-defined]
        assert isinstance(wheel, FollowTail)
        return wheel

    def drop(self) -> None:
        """``del heap['wheel']``."""
        del self.session.heap["wheel"]  # type: ignore[attr-defined]

    @property
    def lines(self) -> list[Any]:
        return [event[1] for event in self.events if event[0] == "input"]

    def count(self, name: str) -> int:
        return sum(1 for event in self.events if event[0] == name)

    def errors(self) -> list[tuple[Any, ...]]:
        return [event[1:] for event in self.events if event[0] == "error"]

    def wait_for(self, predicate: Callable[[], Any], what: str, timeout: float = 5.0) -> None:
        run_until(predicate, timeout=timeout, what=what)

    def wait_lines(self, expected: list[Any], timeout: float = 5.0) -> None:
        """Run until the lines delivered are ``expected`` (fail if they grow past it)."""
        run_until(
            lambda: len(self.lines) >= len(expected), timeout=timeout, what=f"lines {expected}"
        )
        assert self.lines == expected

    def idle_polls(self, polls: int = 2) -> None:
        """Run until ``polls`` more IdleEvents came: the wheel saw nothing new."""
        target = self.count("idle") + polls
        run_until(lambda: self.count("idle") >= target, what=f"{polls} idle polls")

    def run_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        run_until(lambda: time.monotonic() >= deadline, timeout=seconds + 5, what="time")


def construct(**params: Any) -> FollowTail:
    """``FollowTail(InputEvent='input', **params)`` made in a session's
    ``_start``; what it raises is raised here."""
    made: list[FollowTail] = []
    failure: list[BaseException] = []

    def start(_: HandlerArgs) -> None:
        try:
            made.append(FollowTail(InputEvent="input", **params))
        except BaseException as exc:
            failure.append(exc)

    session(_start=start)
    if failure:
        raise failure[0]
    return made[0]


def fds_under(directory: Path) -> int:
    """How many of this process's descriptors are open on files under
    ``directory`` (from /proc: other tests' descriptors, closed by the
    garbage collector at any time, do not count)."""
    prefix = f"{directory}/"
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(prefix):
                count += 1
        except OSError:
            continue
    return count
