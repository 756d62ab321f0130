"""Drawing the scoreboard: an ANSI redraw on a terminal, plain lines elsewhere."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import TextIO

__all__ = ["LEGEND", "Frame", "Screen"]

LEGEND = "w wait  r req  l long  F/f forking  e exit  . free"

_HIDE_CURSOR = "\x1b[?25l"
_SHOW_CURSOR = "\x1b[?25h"
_CLEAR_LINE = "\x1b[2K"
_BOLD = "\x1b[1m"
_RESET = "\x1b[0m"
_COLOURS = {"w": "\x1b[32m", "r": "\x1b[33m", "l": "\x1b[31m", "F": "\x1b[36m", "f": "\x1b[36m"}


@dataclass(frozen=True)
class Frame:
    """One picture of the daemon, as the parent reads it from the scoreboard."""

    elapsed: float
    slots: str
    alive: int
    forked: int
    recycled: int
    served: int
    paused: int = 0
    resumed: int = 0


class Screen:
    """Shows frames: redrawn in place on a terminal, a line a second otherwise."""

    def __init__(self, out: TextIO, title: str, *, ansi: bool, forking: bool) -> None:
        self.out = out
        self.title = title
        self.ansi = ansi
        self.forking = forking
        self._drawn = 0
        self._last_line = -1.0
        self._rates: deque[tuple[float, int]] = deque(maxlen=11)

    def _rate(self, frame: Frame) -> float:
        self._rates.append((frame.elapsed, frame.served))
        (t0, n0), (t1, n1) = self._rates[0], self._rates[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def show(self, frame: Frame) -> None:
        """Draw one frame (the parent's 100 ms timer calls this)."""
        rate = self._rate(frame)
        if self.ansi:
            self._redraw(frame, rate)
        elif frame.elapsed - self._last_line >= 1.0:
            self._last_line = frame.elapsed
            self._line(frame, rate)

    def _lines(self, frame: Frame, rate: float, slots: str) -> list[str]:
        lines = [
            self.title,
            f"  slots     [{slots}]   {LEGEND}",
            f"  children  {frame.alive} alive, {frame.forked} forked, {frame.recycled} recycled",
            f"  requests  {frame.served} served, {rate:6.0f} req/s   ({frame.elapsed:4.1f} s)",
        ]
        if self.forking:
            lines.append(f"  listener  paused {frame.paused} times, resumed {frame.resumed} times")
        return lines

    def _redraw(self, frame: Frame, rate: float) -> None:
        slots = "".join(f"{_COLOURS[c]}{c}{_RESET}" if c in _COLOURS else c for c in frame.slots)
        lines = self._lines(frame, rate, slots)
        lines[0] = f"{_BOLD}{lines[0]}{_RESET}"
        up = f"\x1b[{self._drawn}F" if self._drawn else _HIDE_CURSOR
        self.out.write(up + "".join(f"{_CLEAR_LINE}{line}\n" for line in lines))
        self.out.flush()
        self._drawn = len(lines)

    def _line(self, frame: Frame, rate: float) -> None:
        extra = f" paused={frame.paused} resumed={frame.resumed}" if self.forking else ""
        self.out.write(
            f"t={frame.elapsed:4.1f}s slots [{frame.slots}] alive={frame.alive} "
            f"forked={frame.forked} recycled={frame.recycled} served={frame.served} "
            f"rate={rate:.0f}/s{extra}\n"
        )
        self.out.flush()

    def close(self, frame: Frame | None) -> None:
        """Draw the last frame and give the cursor back."""
        if frame is not None:
            rate = self._rate(frame)
            if self.ansi:
                self._redraw(frame, rate)
            else:
                self._line(frame, rate)
        if self.ansi:
            self.out.write(_SHOW_CURSOR)
            self.out.flush()


def now() -> float:
    """The clock the demo measures elapsed time with."""
    return time.monotonic()
