"""Before and after: benchmark scripts run on two checkouts, interleaved.

Run: ``.venv/bin/python bench/ab.py BASE_TREE [--rounds 3] dispatch timers echo ...``

Each round runs every named script (with its ``make bench`` arguments, from
``run_all.SCRIPTS``) once on the base tree and once on this one, the order
alternating from round to round, so the machine's drift hits both alike.
The scripts are each tree's own, run with ``PYTHONPATH`` (and
``KERNELISH_ROOT``) set to that tree.  Printed per figure: the median of the
rounds for each side with its range, and after / before.  Made for "nothing
else gets slower": compare the after / before column with the ranges.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run_all import ROOT, SCRIPTS  # noqa: E402


def run(tree: Path, script: str) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(tree), "KERNELISH_ROOT": str(tree)}
    out = subprocess.run(
        [sys.executable, str(tree / "bench" / f"{script}.py"), *SCRIPTS[script][0]],
        capture_output=True,
        text=True,
        cwd=tree,
        env=env,
        timeout=1800,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="the other checkout (e.g. a worktree of main)")
    parser.add_argument("scripts", nargs="+", choices=list(SCRIPTS))
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    sides = {"before": opts.base.resolve(), "after": ROOT}
    got: dict[tuple[str, str], dict[str, list[float]]] = {}
    units: dict[tuple[str, str], str] = {}
    for n in range(opts.rounds):
        order = list(sides.items()) if n % 2 == 0 else list(sides.items())[::-1]
        for side, tree in order:
            for script in opts.scripts:
                for record in run(tree, script):
                    name = record.get("bench") or record.get("check")
                    if record.get("breakdown") or not isinstance(record.get("value"), float | int):
                        continue
                    key = (script, name)
                    got.setdefault(key, {"before": [], "after": []})[side].append(record["value"])
                    units[key] = record.get("unit", "")
    print(
        f"{'figure':64} {'before: median [range]':>28} {'after: median [range]':>28} after/before"
    )
    for key, by in got.items():
        if not by["before"] or not by["after"]:
            continue
        b, a = statistics.median(by["before"]), statistics.median(by["after"])
        cells = [
            f"{m:,.4g} [{min(v):,.4g}-{max(v):,.4g}]"
            for m, v in ((b, by["before"]), (a, by["after"]))
        ]
        ratio = a / b if b else float("nan")
        label = f"{key[0]}: {key[1]}"[:64]
        print(f"{label:64} {cells[0]:>28} {cells[1]:>28} {ratio:8.3f} {units[key]}")


if __name__ == "__main__":
    main()
