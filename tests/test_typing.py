"""The kernel's core modules type-check under ``mypy --strict``: plain
classes with typed attributes, no mixins, no ``object.__new__`` -- the shape
a compiler such as mypyc accepts (docs/architecture.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kernelish

ROOT = Path(kernelish.__file__).parent

CORE = [
    "_runtime",
    "_event",
    "_queue",
    "_handler_args",
    "_session",
    "_sessions",
    "_dispatch",
    "_timers",
    "_selector",
    "_watchers",
    "_signals",
    "_children",
    "_fork",
    "_introspect",
    "_kernel",
    "_asyncio",
]


def test_every_core_module_is_listed() -> None:
    """A new module of the kernel joins the strict check (or says why not)."""
    present = {p.stem for p in ROOT.glob("_*.py")}
    outside = {
        "_activation",
        "_constants",
        "_control",
        "_handlers",
        "_params",
        "_params_model",
        "__init__",
        "__main__",
    }
    assert present - outside == set(CORE)


@pytest.mark.timeout(120)
def test_core_modules_pass_mypy_strict(tmp_path: Path) -> None:
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent))
    if mypy is None:
        pytest.skip("mypy is not installed")
    files = [str(ROOT / f"{name}.py") for name in CORE]
    result = subprocess.run(
        [mypy, "--strict", "--cache-dir", str(tmp_path), *files],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
