"""Helpers shared by the benchmark scripts: best-of-N timing and reporting.

Benchmarks are plain scripts (``.venv/bin/python bench/dispatch.py``), never
collected as tests.  Each figure is printed twice: one JSON line (for tools)
and one row of a readable table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

__all__ = ["best_of", "emit", "table"]


def best_of(repeats: int, measure: Callable[[], float]) -> float:
    """The best (highest) of ``repeats`` runs of ``measure``: the machine is
    noisy, and the best run is the one least disturbed by other work."""
    return max(measure() for _ in range(repeats))


def least_of(repeats: int, measure: Callable[[], float]) -> float:
    """The lowest of ``repeats`` runs (for durations)."""
    return min(measure() for _ in range(repeats))


_rows: list[tuple[str, str, str]] = []


def emit(name: str, value: float, unit: str, **extra: Any) -> None:
    """Print one figure as a JSON line and remember it for :func:`table`."""
    record = {"bench": name, "value": round(value, 6), "unit": unit, **extra}
    print(json.dumps(record), flush=True)
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}"
    _rows.append((name, text, unit))


def table(title: str) -> None:
    """Print every figure emitted so far as an aligned table."""
    width = max((len(r[0]) for r in _rows), default=10)
    print()
    print(title)
    print("-" * len(title))
    for name, text, unit in _rows:
        print(f"{name:<{width}}  {text:>14}  {unit}")


def timed(func: Callable[[], Any]) -> float:
    """Seconds ``func()`` takes."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start
