"""Privileges are dropped for good; nothing is shared that should not be."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .._support import LineClient, ProcessReaper, wait_until
from ._harness import App, figures, start_app


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A directory the user nobody may write (tmp_path's parents are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="kernelish-reliability-"))
    nobody = pwd.getpwnam("nobody")
    os.chown(path, nobody.pw_uid, nobody.pw_gid)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def proc_ids(pid: int) -> dict[str, list[int]]:
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = [int(x) for x in rest.split()]
    return out


def test_children_run_as_nobody_for_good(
    tmp_path: Path, procs: ProcessReaper, nobody_dir: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    nobody = pwd.getpwnam("nobody")
    groups = sorted(set(os.getgrouplist("nobody", nobody.pw_gid)))
    logfile = tmp_path / "app.log"  # in a directory nobody cannot even enter
    app = start_app(
        tmp_path, procs, "--start-children", "2", "--min-spare", "2", "--requests", "50",
        "--user", "nobody", logfile=logfile, status_file=nobody_dir / "status.json",
        min_waiting=2,
    )  # fmt: skip
    kids = app.children()
    for pid in [app.pid, *kids]:
        ids = proc_ids(pid)
        assert ids["Uid"] == [nobody.pw_uid] * 4, (pid, ids)  # real, effective, saved, fs
        assert ids["Gid"] == [nobody.pw_gid] * 4, (pid, ids)
        assert sorted(ids["Groups"]) == groups, (pid, ids)
    client = LineClient(app.port)
    pid = int(client.ask("PID"))
    assert client.ask("SETUID0") == "DENIED"
    assert client.ask("LOG 5") == "WROTE 5"
    client.finish()
    text = logfile.read_text()
    assert f"L {pid} 4 " in text, "the child writes to the logfile opened before the drop"
    figures("privileges", processes_checked=1 + len(kids), uid=nobody.pw_uid, groups=groups)
    os.kill(app.pid, signal.SIGTERM)
    wait_until(lambda: not app.processes(), 10, "every daemon process to exit")


def shared_mappings(pid: int) -> list[str]:
    """What backs each writable shared mapping of ``pid``."""
    out = []
    with open(f"/proc/{pid}/maps") as fh:
        for line in fh:
            fields = line.split(maxsplit=5)
            perms = fields[1]
            if perms[1] == "w" and perms[3] == "s":  # writable and shared
                out.append(fields[5].strip() if len(fields) > 5 else "")
    return out


def open_paths(pid: int) -> list[str]:
    paths = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            paths.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return paths


def sysv_segments_of(pids: set[int]) -> list[str]:
    with open("/proc/sysvipc/shm") as fh:
        header, *rows = fh.read().splitlines()
    names = header.split()
    cpid, lpid = names.index("cpid"), names.index("lpid")
    return [r for r in rows if {int(r.split()[cpid]), int(r.split()[lpid])} & pids]


def check_isolation(app: App, private_tmp: Path) -> dict[str, int]:
    pids = {app.pid, *app.children()}
    kinds: set[str] = set()
    checked = 0
    for pid in pids:
        # A child that served its last request may exit between the listing and
        # the read: it has nothing left to check, so it is skipped, not a failure.
        try:
            mappings, paths = shared_mappings(pid), open_paths(pid)
        except FileNotFoundError:
            assert pid != app.pid, "the parent vanished during the check"
            continue
        checked += 1
        kinds.update(mappings)
        for path in paths:
            assert not path.endswith("(deleted)"), (pid, path)
            if path.startswith("/tmp/"):
                # The test's own instruments: the logfile, and the parent's status
                # snapshot (written every 20 ms to ``.tmp``, then renamed).
                ours = (str(app.logfile), str(app.status_file), f"{app.status_file}.tmp")
                assert path in ours, (pid, path)
    assert checked >= 2, "the parent and at least one child were checked"
    assert kinds <= {"/dev/zero (deleted)"}, kinds
    assert sysv_segments_of(pids) == []
    assert list(private_tmp.iterdir()) == []
    return {"processes": checked, "shared_kinds": len(kinds)}


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o640), (0o077, 0o600)])
def test_nothing_shared_that_should_not_be(
    tmp_path: Path, procs: ProcessReaper, umask: int, mode: int
) -> None:
    private_tmp = tmp_path / "tmpdir"
    private_tmp.mkdir()
    before = set(os.listdir("/tmp"))
    app = start_app(
        tmp_path, procs, "--start-children", "2", "--min-spare", "2", "--requests", "2",
        env={"TMPDIR": str(private_tmp)}, umask=umask, min_waiting=2,
    )  # fmt: skip
    seen_pids = {app.pid, *app.children()}
    for _ in range(3):  # some children come and go
        client = LineClient(app.port)
        seen_pids.add(int(client.ask("PID")))
        client.finish()
    wait_until(lambda: app.waiting() >= 2, 5, "the pool")
    seen_pids.update(app.children())
    found = check_isolation(app, private_tmp)
    assert stat.S_IMODE(app.logfile.stat().st_mode) == mode
    os.kill(app.pid, signal.SIGTERM)
    wait_until(lambda: not app.processes(), 10, "every daemon process to exit")
    assert list(private_tmp.iterdir()) == []
    new = set(os.listdir("/tmp")) - before
    ours = [n for n in new if any(str(p) in n for p in seen_pids)]
    assert ours == [], ours
    figures(f"isolation[umask={umask:o}]", logfile_mode=f"{mode:o}", **found)
