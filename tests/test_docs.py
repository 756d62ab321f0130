"""The documentation cannot rot: its runnable blocks and examples run, its
excerpts match the files they quote, and its includes exist.

A block is runnable when the line before its opening fence is
``<!-- runnable -->``.  A block preceded by ``<!-- from: PATH -->`` must be a
verbatim excerpt of PATH.  ``mkdocs build --strict`` itself runs in
``make test``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests._support import reaper

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


README_BLOCKS = re.compile(r"^```python\n(?P<code>.*?)^```\s*$", re.MULTILINE | re.DOTALL).findall(
    (ROOT / "README.md").read_text()
)


def _ask(port: int, request: bytes, want: bytes) -> bytes:
    """``request`` to 127.0.0.1:``port`` until an answer holds ``want`` (a bounded poll:
    the server may still be starting its children)."""
    deadline = time.monotonic() + 10
    got = b""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
                sock.sendall(request)
                got = b""
                while want not in got and (chunk := sock.recv(4096)):
                    got += chunk
                if want in got:
                    return got
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"no {want!r} from port {port}: last answer {got!r}")


@pytest.mark.parametrize(
    "code", README_BLOCKS, ids=[f"README#{n}" for n in range(len(README_BLOCKS))]
)
def test_readme_server_serves_and_stops(code: str, tmp_path: Path) -> None:
    """Each server of the README runs as written (on a free port instead of 8080), answers
    a client, and ends with status 0 and no traceback on SIGTERM."""
    assert "8080" in code and "poe_kernel.run()" in code
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = tmp_path / "readme.py"
    script.write_text(code.replace("8080", str(port)))
    errors = tmp_path / "stderr"
    with reaper() as procs, errors.open("w") as stderr_file:
        proc = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=tmp_path,
            stderr=stderr_file,
            start_new_session=True,
        )
        procs.add_session(proc.pid)
        if "ServerHTTP" in code:
            _ask(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"Hello")
            _ask(
                port,
                b"GET /server-status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                b"200 OK",
            )
        else:
            _ask(port, b"PING\r\n", b"PONG")
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    stderr = errors.read_text()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr


def test_no_merge_conflict_markers() -> None:
    """A merge left unresolved cannot land: no tracked text file holds conflict markers."""
    tracked = subprocess.run(
        ["git", "ls-files", "*.md", "*.py", "*.toml", "*.yml", "Makefile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    marker = re.compile(r"^(<{7} |={7}$|>{7} )", re.MULTILINE)
    bad = [name for name in tracked if marker.search((ROOT / name).read_text())]
    assert not bad, f"conflict markers in {bad}"
