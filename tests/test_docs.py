"""The documentation cannot rot: its runnable blocks and examples run, its
excerpts match the files they quote, and its includes exist.

A block is runnable when the line before its opening fence is
``<!-- runnable -->``.  A block preceded by ``<!-- from: PATH -->`` must be a
verbatim excerpt of PATH.  ``mkdocs build --strict`` itself runs in
``make test``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"

_BLOCK = re.compile(
    r"^<!-- (?P<marker>runnable|from: (?P<path>\S+)) -->\n"
    r"(?P<fence>```+)(?P<lang>\w+)[^\n]*\n(?P<code>.*?)^(?P=fence)\s*$",
    re.MULTILINE | re.DOTALL,
)
_INCLUDE = re.compile(r'^--8<-- "(?P<path>[^"]+)"\s*$', re.MULTILINE)


def _blocks(kind: str) -> list[tuple[str, str, str]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text()
        for n, match in enumerate(_BLOCK.finditer(text)):
            marker = match["marker"]
            if (kind == "runnable") == (marker == "runnable"):
                name = f"{page.relative_to(DOCS)}#{n}"
                found.append((name, match["path"] or "", match["code"]))
    return found


RUNNABLE = _blocks("runnable")
EXCERPTS = _blocks("from")
CONCEPTS = sorted(EXAMPLES.glob("concept_*.py"))


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=15,
        start_new_session=True,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_there_is_something_to_check() -> None:
    assert RUNNABLE, "no runnable blocks found: is the marker still <!-- runnable -->?"
    assert EXCERPTS
    assert len(CONCEPTS) >= 6


@pytest.mark.parametrize(("name", "path", "code"), RUNNABLE, ids=[b[0] for b in RUNNABLE])
def test_runnable_block_runs(name: str, path: str, code: str, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(code)
    _run([str(script)], tmp_path)


@pytest.mark.parametrize("example", CONCEPTS, ids=[p.name for p in CONCEPTS])
def test_concept_example_runs(example: Path, tmp_path: Path) -> None:
    proc = _run([str(example)], tmp_path)
    assert proc.stdout or proc.stderr, "every example shows something"


def _quotes(source: str, excerpt: str) -> bool:
    """Whether ``excerpt`` is consecutive lines of ``source``, both dedented
    (a method quoted without its class's indentation)."""
    want = textwrap.dedent(excerpt).strip("\n").splitlines()
    lines = source.splitlines()
    for start in range(len(lines) - len(want) + 1):
        if textwrap.dedent("\n".join(lines[start : start + len(want)])).splitlines() == want:
            return True
    return False


@pytest.mark.parametrize(("name", "path", "code"), EXCERPTS, ids=[b[0] for b in EXCERPTS])
def test_excerpt_is_verbatim(name: str, path: str, code: str) -> None:
    source = (ROOT / path).read_text()
    assert _quotes(source, code), f"{name} no longer matches {path}"


def test_every_include_exists_and_every_concept_is_included() -> None:
    included = set()
    for page in DOCS.rglob("*.md"):
        for match in _INCLUDE.finditer(page.read_text()):
            assert (ROOT / match["path"]).is_file(), f"{page.name}: {match['path']}"
            included.add(match["path"])
    for example in CONCEPTS:
        assert f"examples/{example.name}" in included, f"{example.name} is not in the docs"
