"""The wheel interface a user's own wheel is written against: watch, emit,
defer/cancel, hold -- and what dropping such a wheel releases."""

from __future__ import annotations

import gc
import os
import time
from typing import Any

from kernelish import ARG0, ARG1, HEAP, HandlerArgs, poe_kernel
from kernelish.peek import Peek
from kernelish.wheels import MODE_READ, Wheel

from ._wheels import run_until, session


class PipeReader(Wheel):
    """A user-written wheel: reads a pipe, emits chunks, ticks on a timer."""

    __slots__ = ("_fd", "_got", "_tick", "_tick_id", "ticks")

    def __init__(self, fd: int, got: str, tick: str | None = None) -> None:
        super().__init__()
        self._fd = fd
        self._got = got
        self._tick = tick
        self.ticks = 0
        self._tick_id: int | None = None
        self.watch(fd, MODE_READ, PipeReader._on_read)
        if tick is not None:
            self._tick_id = self.defer(PipeReader._on_tick, 0.01)

    def _on_read(self) -> None:
        data = os.read(self._fd, 4096)
        if not data:
            self.unwatch(self._fd, MODE_READ)
            return
        self.emit(self._got, data, self.ID)

    def _on_tick(self) -> None:
        self.ticks += 1
        self._tick_id = self.defer(PipeReader._on_tick, 0.01)
        self.emit(self._tick, self.ticks)

    def stop_ticking(self) -> None:
        self.cancel(self._tick_id)


def test_a_user_wheel_watches_emits_and_defers() -> None:
    r, w = os.pipe()
    got: list[Any] = []
    ticks: list[int] = []

    def start(_: HandlerArgs) -> None:
        _[HEAP]["wheel"] = PipeReader(r, "got", "tick")

    def on_got(_: HandlerArgs) -> None:
        got.append((_[ARG0], _[ARG1] == _[HEAP]["wheel"].ID, _.sender is _.session))

    def on_tick(_: HandlerArgs) -> None:
        ticks.append(_[ARG0])
        if _[ARG0] == 3:
            _[HEAP]["wheel"].stop_ticking()

    s = session(_start=start, got=on_got, tick=on_tick)
    os.write(w, b"hello")
    run_until(lambda: got and len(ticks) >= 3, what="a chunk and three ticks")
    assert got == [(b"hello", True, True)]
    # The cancelled tick never comes.
    deadline = time.monotonic() + 0.1
    run_until(lambda: time.monotonic() > deadline, what="a quiet tenth of a second")
    assert ticks == [1, 2, 3]
    # A deferred call is no user timer: alarm_remove_all leaves it alone.
    assert s.alive
    os.close(w)
    del s.heap["wheel"]
    poe_kernel.run()
    os.close(r)


def test_dropping_a_user_wheel_cancels_its_timers_and_watches() -> None:
    r, w = os.pipe()
    stopped: list[bool] = []
    gc.collect()

    def start(_: HandlerArgs) -> None:
        _[HEAP]["wheel"] = PipeReader(r, "got", "tick")

    def on_tick(_: HandlerArgs) -> None:
        del _[HEAP]["wheel"]  # its watch and its next tick go with it

    session(_start=start, got=lambda _: None, tick=on_tick, _stop=lambda _: stopped.append(True))
    poe_kernel.run()  # returns only if nothing of the wheel is left
    assert stopped == [True]
    assert Peek().handle_count() == 0
    os.close(r)
    os.close(w)


def test_alarm_remove_all_leaves_a_wheels_deferred_calls_alone() -> None:
    ticks: list[int] = []
    removed: list[Any] = []

    def start(_: HandlerArgs) -> None:
        _[HEAP]["wheel"] = PipeReader(r, "got", "tick")
        _.kernel.delay("mine", 10)
        removed.extend(_.kernel.alarm_remove_all())

    def on_tick(_: HandlerArgs) -> None:
        ticks.append(_[ARG0])
        del _[HEAP]["wheel"]

    r, w = os.pipe()
    session(_start=start, got=lambda _: None, tick=on_tick)
    poe_kernel.run()
    assert [name for name, *_rest in removed] == ["mine"]
    assert ticks == [1]
    os.close(r)
    os.close(w)
