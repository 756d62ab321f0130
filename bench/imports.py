"""What importing kernelish costs: time, and the master's memory and mappings before it forks.

Run: ``.venv/bin/python bench/imports.py [--repeats 7]``.

Every figure is measured in a fresh interpreter (``python -c``), beside the
bare interpreter's, in the same run.

* Import time of ``kernelish`` and of the Daemon component, best of R, and
  the heaviest modules (``python -X importtime``, self time).
* The master after importing the Daemon, wheels and filters -- what every
  child of a pool inherits and what ``fork()`` copies the page tables of:
  anonymous resident memory (``RssAnon`` of ``/proc/self/status``) and the
  number of mappings (``/proc/self/maps``).  Targets: <= 12 MB, <= 120.
  The same for the kernel alone and for wheels + filters without the
  Daemon (what is left outside the daemon package).
* Each dependency (pydantic, psutil, pyee, asyncio) with and without: *with*
  is the stack plus ``import DEP`` (for a dependency the stack imports
  anyway, the stack itself); *without* is the stack with DEP replaced by an
  empty stand-in module -- what the stack would cost if DEP were imported
  only when first used.  The stand-in answers every attribute with a dummy
  that can be called, subclassed and used as a decorator, so the modules
  import; nothing runs.
* The mappings by what they map (the breakdown under the table).

Memory figures are the median of the runs (they vary by a page or two).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import check, emit, table

ROOT = Path(__file__).resolve().parent.parent
#: The kernelish measured (another checkout's, to compare: KERNELISH_ROOT=...).
CODE_ROOT = Path(os.environ.get("KERNELISH_ROOT", ROOT))
ENV = {**os.environ, "PYTHONPATH": str(CODE_ROOT)}
CODE = "import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"
STACK = ("kernelish.components.daemon", "kernelish.wheels", "kernelish.filters")
OUTSIDE_DAEMON = ("kernelish.wheels", "kernelish.filters")
DEPENDENCIES = ("pydantic", "psutil", "pyee", "asyncio")

#: Run in a fresh interpreter: stub out some packages, import modules, then
#: report RssAnon (kB), the mappings and which dependencies got imported.
PROBE = r"""
import sys

STUBBED = set(sys.argv[1].split(",")) - {""}
MODULES = [m for m in sys.argv[2].split(",") if m]
AFTER = [m for m in sys.argv[3].split(",") if m]
ModuleSpec = sys.modules["_frozen_importlib"].ModuleSpec  # nothing more imported


class _Base:
    def __init_subclass__(cls, **kwargs): pass
    def __init__(self, *args, **kwargs): pass


class _Dummy:
    def __init__(self, *args, **kwargs): pass
    def __call__(self, *args, **kwargs):
        if len(args) == 1 and not kwargs and callable(args[0]):
            return args[0]  # used as a decorator
        return _Dummy()
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Dummy()
    def __mro_entries__(self, bases): return (_Base,)
    def __getitem__(self, key): return self
    def __or__(self, other): return self
    __ror__ = __or__
    def __iter__(self): return iter(())


class _Stub(type(sys)):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Dummy()


class _Finder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in STUBBED:
            return ModuleSpec(name, cls, is_package=True)
        return None
    @staticmethod
    def create_module(spec):
        module = _Stub(spec.name)
        module.__path__ = []
        return module
    @staticmethod
    def exec_module(module): pass


if STUBBED:
    sys.meta_path.insert(0, _Finder)
for name in MODULES + AFTER:
    __import__(name)
with open("/proc/self/status") as fh:
    rss_anon = [line.split()[1] for line in fh if line.startswith("RssAnon:")][0]
with open("/proc/self/maps") as fh:
    paths = [(line.split() + ["[anon]"])[5] for line in fh]
deps = [d for d in ("pydantic", "psutil", "pyee", "asyncio")
        if d in sys.modules and not isinstance(sys.modules[d], _Stub)]
print(rss_anon)
print(",".join(deps))
print("\n".join(paths))
"""


def probe(
    modules: tuple[str, ...], stubbed: tuple[str, ...] = (), after: tuple[str, ...] = ()
) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(stubbed), ",".join(modules), ",".join(after)],
        capture_output=True,
        text=True,
        cwd=CODE_ROOT,
        timeout=60,
        env=ENV,
    )
    if out.returncode:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
    rss_anon, deps, *paths = out.stdout.splitlines()
    return {
        "rss_anon_kb": int(rss_anon),
        "maps": len(paths),
        "paths": paths,
        "deps": [d for d in deps.split(",") if d],
    }


def memory(
    repeats: int,
    modules: tuple[str, ...],
    stubbed: tuple[str, ...] = (),
    after: tuple[str, ...] = (),
) -> tuple[float, float, dict]:
    """Median RssAnon (MB) and mappings of ``repeats`` fresh interpreters, and the last probe."""
    runs = [probe(modules, stubbed, after) for _ in range(repeats)]
    rss = statistics.median(r["rss_anon_kb"] for r in runs) / 1024
    maps = statistics.median(r["maps"] for r in runs)
    return rss, maps, runs[-1]


def import_seconds(module: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CODE.format(mod=module)],
        capture_output=True,
        text=True,
        check=True,
        cwd=CODE_ROOT,
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
        cwd=CODE_ROOT,
        timeout=60,
    )
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line[len("import time:") :].split("|")
        rows.append((name.strip(), float(self_us)))
    return sorted(rows, key=lambda r: -r[1])[:top]


def by_source(paths: list[str]) -> list[tuple[str, int]]:
    """Mappings grouped by what they map: a package of site-packages, an
    extension module or library, or anonymous memory."""
    counts: dict[str, int] = {}
    for path in paths:
        if "site-packages/" in path:
            key = "site-packages: " + path.split("site-packages/")[1].split("/")[0]
        elif path.endswith(".so") or ".so." in path:
            key = os.path.basename(path).split(".cpython")[0]
        else:
            key = path
        counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])


def bench_memory(repeats: int) -> None:
    group = {"group": "imports"}
    bare_rss, bare_maps, _ = memory(repeats, ())
    emit("bare interpreter: RssAnon", bare_rss, "MB", baseline=True, **group)
    emit("bare interpreter: mappings", bare_maps, "maps", baseline=True, **group)
    for label, modules in (
        ("the kernel (import kernelish)", ("kernelish",)),
        ("wheels + filters (outside the daemon package)", OUTSIDE_DAEMON),
    ):
        rss, maps, _ = memory(repeats, modules)
        emit(f"{label}: RssAnon", rss, "MB", **group)
        emit(f"{label}: mappings", maps, "maps", **group)
    rss, maps, stack = memory(repeats, STACK)
    emit("Daemon + wheels + filters: RssAnon", rss, "MB", deps=stack["deps"], **group)
    emit("Daemon + wheels + filters: mappings", maps, "maps", **group)
    check(
        "master after importing Daemon, wheels, filters: RssAnon", rss, "<=", 12, unit="MB", **group
    )
    check(
        "master after importing Daemon, wheels, filters: mappings",
        maps,
        "<=",
        120,
        unit="maps",
        **group,
    )
    for dep in DEPENDENCIES:
        if dep in stack["deps"]:
            with_rss, with_maps = rss, maps
        else:
            with_rss, with_maps, _ = memory(repeats, STACK, after=(dep,))
        try:
            without_rss, without_maps, _ = memory(repeats, STACK, stubbed=(dep,))
        except RuntimeError as exc:  # the stand-in was not enough for an import
            without_rss = without_maps = float("nan")
            print(f"stack without {dep}: {exc}", file=sys.stderr)
        how = "imported by the stack" if dep in stack["deps"] else "not imported by the stack"
        for what, value, unit in (
            ("RssAnon", with_rss, "MB"),
            ("mappings", with_maps, "maps"),
        ):
            emit(f"  with {dep} ({how}): {what}", value, unit, dependency=dep, **group)
        emit(f"  without {dep} (a stand-in): RssAnon", without_rss, "MB", dependency=dep, **group)
        emit(
            f"  without {dep} (a stand-in): mappings", without_maps, "maps", dependency=dep, **group
        )
    # What only the daemon package can still cut: it imports pydantic (its
    # configuration models, built at import) and psutil (the babysitter and
    # the control module), both of which could wait for their first use.
    both_rss, both_maps, _ = memory(repeats, STACK, stubbed=("pydantic", "psutil"))
    emit("  without pydantic and psutil (stand-ins): RssAnon", both_rss, "MB", **group)
    emit("  without pydantic and psutil (stand-ins): mappings", both_maps, "maps", **group)
    for source, count in by_source(stack["paths"])[:12]:
        emit(f"  mappings of {source}", count, "maps", breakdown=True, **group)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    opts = parser.parse_args()
    for module in ("kernelish", "kernelish.components.daemon"):
        best = min(import_seconds(module) for _ in range(opts.repeats))
        emit(f"import {module}", best * 1000, "ms", group="imports")
    for name, self_us in heaviest("kernelish.components.daemon"):
        emit(f"  heaviest: {name}", self_us / 1000, "ms", breakdown=True, group="imports")
    table(f"import time, best of {opts.repeats}")
    bench_memory(max(1, min(opts.repeats, 3)))
    table("the master before it forks: anonymous memory and mappings after the imports")


if __name__ == "__main__":
    main()
