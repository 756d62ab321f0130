"""Helpers shared by the benchmark scripts: best-of-N timing and reporting.

Benchmarks are plain scripts (``.venv/bin/python bench/dispatch.py``), never
collected as tests; ``bench/run_all.py`` runs them all (``make bench``).
Each figure is printed twice: one JSON line (for tools and for
``run_all.py``, which collects them) and one row of a readable table.

Two kinds of JSON line:

* a figure: ``{"bench": name, "value": v, "unit": u, ...}``, with ``perl``
  (the Perl original's figure, when the issue gives one) and ``group``;
* a check of a target: ``{"check": name, "value": v, "op": ">=", "target":
  t, "unit": u, "pass": bool, ...}``, printed as PASS / FALL SHORT.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "best_of",
    "check",
    "emit",
    "least_of",
    "percentile",
    "table",
    "timed",
    "wrk",
]


def best_of(repeats: int, measure: Callable[[], float]) -> float:
    """The best (highest) of ``repeats`` runs of ``measure``: the machine is
    noisy, and the best run is the one least disturbed by other work."""
    return max(measure() for _ in range(repeats))


def least_of(repeats: int, measure: Callable[[], float]) -> float:
    """The lowest of ``repeats`` runs (for durations)."""
    return min(measure() for _ in range(repeats))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, nearest rank; 0.0 if empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


_rows: list[tuple[str, str, str, str]] = []


def _fmt(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}"


def emit(name: str, value: float, unit: str, **extra: Any) -> dict[str, Any]:
    """Print one figure as a JSON line and remember it for :func:`table`."""
    record = {"bench": name, "value": round(value, 6), "unit": unit, **extra}
    print(json.dumps(record), flush=True)
    perl = extra.get("perl")
    _rows.append((name, _fmt(value), unit, "" if perl is None else f"(Perl: {_fmt(perl)})"))
    return record


def check(
    name: str,
    value: float,
    op: str,
    target: float,
    unit: str = "x",
    **extra: Any,
) -> bool:
    """Print one target check (PASS / FALL SHORT) as a JSON line and a row."""
    ok = value >= target if op == ">=" else value <= target
    record = {
        "check": name,
        "value": round(value, 6),
        "op": op,
        "target": target,
        "unit": unit,
        "pass": ok,
        **extra,
    }
    print(json.dumps(record), flush=True)
    verdict = "PASS" if ok else "FALL SHORT"
    _rows.append((name, _fmt(value), unit, f"{op} {_fmt(target)}  {verdict}"))
    return ok


def table(title: str) -> None:
    """Print every figure emitted so far as an aligned table."""
    width = max((len(r[0]) for r in _rows), default=10)
    print()
    print(title)
    print("-" * len(title))
    for name, text, unit, note in _rows:
        print(f"{name:<{width}}  {text:>14}  {unit:<14} {note}".rstrip())
    print(flush=True)
    _rows.clear()


def timed(func: Callable[[], Any]) -> float:
    """Seconds ``func()`` takes."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def wrk(port: int, connections: int, seconds: float, keep_alive: bool) -> float:
    """Requests per second Debian's ``wrk`` measured against 127.0.0.1:``port``
    (2 threads; without ``keep_alive``, every request says ``Connection: close``).
    Non-2xx responses, or output without a rate, fail the bench."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s"]
    if not keep_alive:
        command += ["-H", "Connection: close"]
    out = subprocess.run(
        [*command, f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"wrk said:\n{out}")
    return float(match.group(1))
