"""Import time of ``kernelish`` and of the Daemon component.

Run: ``.venv/bin/python bench/imports.py [--repeats 7]``.

Each import runs in a fresh interpreter (``python -c``), timed inside it
around the ``import`` statement; the figure is the best of R.  The heaviest
modules of the Daemon's import (``python -X importtime``, self time) are
listed as the breakdown.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import emit, table

ROOT = Path(__file__).resolve().parent.parent
CODE = "import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"


def import_seconds(module: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CODE.format(mod=module)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    return float(out.stdout.strip())


def heaviest(module: str, top: int = 6) -> list[tuple[str, float]]:
    """(module, self microseconds) of the ``top`` slowest imports."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line[len("import time:") :].split("|")
        rows.append((name.strip(), float(self_us)))
    return sorted(rows, key=lambda r: -r[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    opts = parser.parse_args()
    for module in ("kernelish", "kernelish.components.daemon"):
        best = min(import_seconds(module) for _ in range(opts.repeats))
        emit(f"import {module}", best * 1000, "ms", group="imports")
    for name, self_us in heaviest("kernelish.components.daemon"):
        emit(f"  heaviest: {name}", self_us / 1000, "ms", breakdown=True)
    table(f"import time, best of {opts.repeats}")


if __name__ == "__main__":
    main()
