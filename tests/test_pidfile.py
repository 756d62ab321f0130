"""The pidfile: atomic, locked for the daemon's life, refused while a live
daemon holds it, taken over when stale, removed at shutdown, never through a
symlink.  In-process for the file rules, real detached daemons for the rest."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest

from kernelish.components.daemon._pidfile import Pidfile, PidfileError, is_locked, read_pid

from ._appsupport import children_of, daemon_pids, launch, start_daemon
from ._support import ProcessReaper, wait_until

# -- the file rules, in-process ------------------------------------------------------------


def test_acquire_writes_locks_and_removes(tmp_path: Path) -> None:
    path = tmp_path / "d.pid"
    pidfile = Pidfile(path)
    pidfile.acquire()
    assert path.read_text() == f"{os.getpid()}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert is_locked(path) and read_pid(path) == os.getpid()
    assert [p.name for p in tmp_path.iterdir()] == ["d.pid"], "no temporary file left"
    with pytest.raises(PidfileError, match=f"pid {os.getpid()}") as info:
        Pidfile(path).check()  # flock: another open file description conflicts
    assert info.value.pid == os.getpid()
    pidfile.remove()
    assert not path.exists()


def test_stale_pidfile_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "d.pid"
    path.write_text("999999\n")
    assert not is_locked(path)
    pidfile = Pidfile(path)
    pidfile.acquire()
    assert read_pid(path) == os.getpid()
    pidfile.remove()


def test_symlink_is_refused_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    path = tmp_path / "d.pid"
    path.symlink_to(target)
    for call in (Pidfile(path).check, Pidfile(path).acquire):
        with pytest.raises(PidfileError, match="symbolic link"):
            call()
    assert target.read_text() == "precious\n"
    dangling = tmp_path / "dangling.pid"
    dangling.symlink_to(tmp_path / "nothing")
    with pytest.raises(PidfileError, match="symbolic link"):
        Pidfile(dangling).acquire()
    assert not (tmp_path / "nothing").exists()


def test_remove_leaves_a_file_that_is_not_ours(tmp_path: Path) -> None:
    path = tmp_path / "d.pid"
    pidfile = Pidfile(path)
    pidfile.acquire()
    os.unlink(path)
    path.write_text("123\n")  # someone else's now
    pidfile.remove()
    assert path.read_text() == "123\n"


def test_child_closing_its_copy_keeps_the_parents_lock(tmp_path: Path) -> None:
    path = tmp_path / "d.pid"
    pidfile = Pidfile(path)
    pidfile.acquire()
    pid = os.fork()
    if pid == 0:
        try:
            pidfile.close_in_child()
            pidfile.remove()  # a no-op in a child
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert path.exists() and is_locked(path)
    pidfile.remove()


# -- real daemons ---------------------------------------------------------------------------


def test_second_daemon_refused_then_takes_over_after_kill(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    pidfile = tmp_path / "d.pid"
    first = start_daemon(tmp_path, procs, pidfile=pidfile)
    assert read_pid(pidfile) == first and os.getsid(first) == first
    second = launch(tmp_path / "2.log", "--pidfile", str(pidfile))
    assert second.returncode != 0
    assert "PidfileError" in second.stderr and f"pid {first}" in second.stderr, second.stderr
    assert read_pid(pidfile) == first
    kids = children_of(first)
    os.kill(first, signal.SIGKILL)
    # The children closed their copy of the locked file, so the parent's
    # death releases the lock even while they are still exiting.
    wait_until(lambda: not is_locked(pidfile), 5, "the lock to go with the parent")
    assert pidfile.exists(), "a SIGKILLed daemon leaves a stale file"
    third = start_daemon(tmp_path, procs, pidfile=pidfile)
    assert third != first and read_pid(pidfile) == third
    wait_until(lambda: not any(p in daemon_pids(first) for p in kids), 5, "the orphans to go")


def test_pidfile_removed_at_shutdown(tmp_path: Path, procs: ProcessReaper) -> None:
    pidfile = tmp_path / "d.pid"
    pid = start_daemon(tmp_path, procs, pidfile=pidfile)
    sock = Path(str(pidfile) + ".sock")
    assert sock.exists()
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not daemon_pids(pid), 5, "the daemon to exit")
    assert not pidfile.exists() and not sock.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.log"]


def test_daemon_refuses_symlinked_pidfile(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("")
    (tmp_path / "d.pid").symlink_to(target)
    proc = launch(tmp_path / "d.log", "--pidfile", str(tmp_path / "d.pid"))
    assert proc.returncode != 0 and "symbolic link" in proc.stderr
    assert target.read_text() == ""
