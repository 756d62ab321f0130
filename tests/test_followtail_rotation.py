"""FollowTail through rotation, truncation, a path that disappears or
becomes unreadable -- losing and repeating nothing, leaking no descriptor.

Each step runs between two polls (the kernel is stepped only by the
``wait_*`` calls), which is the race a real writer and logrotate may hit.
What POE 1.370 does on the same steps is noted beside each test."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from kernelish._params import ParameterError

from ._tailing import Tail, construct, fds_under


def append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def test_rename_rotation_reads_the_old_file_to_its_end_first(tmp_path: Path) -> None:
    """logrotate's ``create``: rename, a new file, the writer told to reopen
    later.  Lines the writer still appends to the old file come -- before the
    new file's -- with one ResetEvent.  (POE 1.370 loses a3 and a4.)"""
    log, old = tmp_path / "log", tmp_path / "log.1"
    log.write_text("a1\n")
    tail = Tail(Filename=str(log))
    tail.idle_polls(1)
    append(log, "a2\n")
    log.rename(old)
    append(old, "a3\n")  # the writer has not reopened yet
    log.write_text("b1\n")
    tail.wait_lines(["a2", "a3", "b1"])
    assert tail.count("reset") == 1
    assert [e[0] for e in tail.events if e[0] != "idle"] == ["input", "input", "reset", "input"]
    # A straggler into the retired file, then the new file: both, in order.
    append(old, "a4\n")
    append(log, "b2\n")
    tail.wait_lines(["a2", "a3", "b1", "a4", "b2"])
    assert tail.count("reset") == 1
    assert tail.errors() == []


def test_a_retired_file_is_closed_once_quiet(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("a\n")
    tail = Tail(Filename=str(log))  # PollInterval 0.02: grace is the 1 s floor
    tail.idle_polls(1)
    assert fds_under(tmp_path) == 1
    log.rename(tmp_path / "log.1")
    log.write_text("b\n")
    tail.wait_lines(["b"])
    assert fds_under(tmp_path) == 2  # the old file, retired
    tail.wait_for(lambda: fds_under(tmp_path) == 1, "the retired file closed", 4)
    tail.drop()
    assert fds_under(tmp_path) == 0


def test_retired_files_are_bounded(tmp_path: Path) -> None:
    """Rotated files still being written stay open -- at most 8 of them."""
    log = tmp_path / "log"
    log.write_text("")
    tail = Tail(Filename=str(log))
    tail.idle_polls(1)
    for n in range(12):
        log.rename(tmp_path / f"log.{n}")
        log.write_text(f"r{n}\n")
        for old in range(n):  # every old file keeps growing: none is quiet
            append(tmp_path / f"log.{old}", f"k{old}\n")
        tail.wait_for(lambda n=n: f"r{n}" in tail.lines, f"line r{n}")
        assert fds_under(tmp_path) == 1 + min(n + 1, 8)
    assert [line for line in tail.lines if line.startswith("r")] == [f"r{n}" for n in range(12)]
    tail.drop()
    assert fds_under(tmp_path) == 0


def test_copytruncate_is_a_reset_read_from_0(tmp_path: Path) -> None:
    """POE agrees (its reset, then the new content)."""
    log = tmp_path / "log"
    log.write_text("l1\nl2\n")
    tail = Tail(Filename=str(log))
    tail.idle_polls(1)
    append(log, "l3\n")
    tail.wait_lines(["l3"])
    shutil.copy(log, tmp_path / "log.1")
    with log.open("r+") as f:
        f.truncate(0)
    tail.wait_for(lambda: tail.count("reset") == 1, "the reset")
    append(log, "m1\n")
    tail.wait_lines(["l3", "m1"])
    assert tail.count("reset") == 1


def test_truncated_and_grown_back_past_the_offset_is_still_a_reset(tmp_path: Path) -> None:
    """The writer outruns the poll after a copytruncate: the file is bigger
    than the offset again.  POE 1.370 compares sizes only, sees nothing and
    goes on from the old offset, in the middle of a new line."""
    log = tmp_path / "log"
    log.write_text("x1\n")
    tail = Tail(Filename=str(log))
    tail.idle_polls(1)
    append(log, "x2\n")
    tail.wait_lines(["x2"])
    with log.open("r+") as f:
        f.truncate(0)
    append(log, "new line one\nnew line two\n")
    tail.wait_lines(["x2", "new line one", "new line two"])
    assert tail.count("reset") == 1


def test_a_hard_link_is_no_reset(tmp_path: Path) -> None:
    """POE 1.370 takes a changed link count for a reset and reads the whole
    file again: a backup tool's hard link repeats every line."""
    log = tmp_path / "log"
    log.write_text("")
    tail = Tail(Filename=str(log))
    tail.idle_polls(1)
    append(log, "a\nb\n")
    tail.wait_lines(["a", "b"])
    os.link(log, tmp_path / "backup")
    append(log, "c\n")
    tail.wait_lines(["a", "b", "c"])
    tail.idle_polls(2)
    assert tail.lines == ["a", "b", "c"]
    assert tail.count("reset") == 0


def test_unlinking_a_followed_handle_replays_nothing(tmp_path: Path) -> None:
    """POE 1.370 resets a Handle whose link count changed and reads it
    again from 0."""
    log = tmp_path / "log"
    log.write_text("a\n")
    with log.open("rb") as handle, log.open("a") as writer:
        tail = Tail(Handle=handle)
        tail.idle_polls(1)
        writer.write("b\n")
        writer.flush()
        tail.wait_lines(["b"])
        log.unlink()
        writer.write("c\n")
        writer.flush()
        tail.wait_lines(["b", "c"])
        tail.idle_polls(2)
        assert tail.lines == ["b", "c"]
        assert tail.count("reset") == 0
        tail.drop()


def test_a_missing_file_is_waited_for_and_read_from_its_start(tmp_path: Path) -> None:
    """POE agrees: IdleEvents, then a ResetEvent and the whole file."""
    log = tmp_path / "log"
    tail = Tail(Filename=str(log), SeekBack=1)  # Seek applies to a file there at the start
    tail.idle_polls(3)
    assert tail.events == [("idle",)] * len(tail.events)
    log.write_text("x\ny\n")
    tail.wait_lines(["x", "y"])
    assert tail.count("reset") == 1
    assert tail.errors() == []


def test_a_file_that_disappears_is_read_to_its_end_and_waited_for(tmp_path: Path) -> None:
    """``rm`` while the writer still has it open: its last lines come (POE
    1.370 drops the file at once and loses them), then IdleEvents until the
    path is back, then a ResetEvent and the new file."""
    log = tmp_path / "log"
    log.write_text("a\n")
    with log.open("a") as writer:
        tail = Tail(Filename=str(log))
        tail.idle_polls(1)
        log.unlink()
        writer.write("b\n")
        writer.flush()
        tail.wait_lines(["b"])
        writer.write("c\n")
        writer.flush()
        tail.wait_lines(["b", "c"])
        tail.idle_polls(3)
    log.write_text("d\n")
    tail.wait_lines(["b", "c", "d"])
    assert tail.count("reset") == 1
    assert tail.errors() == []


def test_a_path_that_cannot_be_opened_is_reported_once_and_followed_again(
    tmp_path: Path,
) -> None:
    """The path becomes a directory.  POE 1.370 opens it, gives a ResetEvent
    and ErrorEvent('read', EISDIR) and stops for good; here the error comes
    once, the polling goes on, and a file back at the path is followed."""
    log = tmp_path / "log"
    log.write_text("a\n")
    tail = Tail(Filename=str(log))
    tail.idle_polls(1)
    log.unlink()
    log.mkdir()
    tail.wait_for(lambda: tail.errors(), "the error")
    tail.idle_polls(5)
    assert tail.errors() == [("open", errno.EISDIR, os.strerror(errno.EISDIR))]
    log.rmdir()
    log.write_text("back\n")
    tail.wait_lines(["back"])
    assert tail.count("reset") == 1


def test_a_symlink_is_refused_unless_followed_on_request(tmp_path: Path) -> None:
    """A symlink planted in place of the file by a service user must not
    lead a root daemon elsewhere: O_NOFOLLOW unless FollowSymlinks."""
    target = tmp_path / "secret"
    target.write_text("secret\n")
    link = tmp_path / "log"
    link.symlink_to(target)
    with pytest.raises(ParameterError, match="is a symbolic link; give FollowSymlinks") as info:
        construct(Filename=str(link))
    assert info.value.params == ("Filename",)

    followed = Tail(Filename=str(link), FollowSymlinks=True, Seek=0)
    followed.wait_lines(["secret"])
    followed.drop()

    # Planted at a rotation: reported (ELOOP), never read.
    link.unlink()
    link.write_text("")
    tail = Tail(Filename=str(link))
    tail.idle_polls(1)
    link.rename(tmp_path / "log.1")
    link.symlink_to(target)
    tail.wait_for(lambda: tail.errors(), "the error")
    tail.idle_polls(3)
    assert tail.errors() == [("open", errno.ELOOP, os.strerror(errno.ELOOP))]
    assert tail.lines == []


def _permission_scenario(path: str, report: int, go: int) -> None:
    """In a child running as nobody: follow ``path`` (unreadable at first),
    tell the parent about the error, and report what came once it is readable."""
    from ._tailing import Tail

    tail = Tail(Filename=path)
    tail.wait_for(lambda: tail.errors(), "the permission error")
    os.write(report, json.dumps({"errors": tail.errors()}).encode() + b"\n")
    os.read(go, 1)  # the parent made it readable
    tail.wait_lines(["readable now"])
    tail.idle_polls(2)
    os.write(report, json.dumps({"lines": tail.lines, "errors": tail.errors()}).encode() + b"\n")


def test_permission_denied_is_reported_and_waited_out() -> None:
    """EACCES on open: POE 1.370 waits silently; here one ErrorEvent, then
    the file is followed once readable.  Runs as nobody (root reads
    anything), in a forked child."""
    top = tempfile.mkdtemp(prefix="followtail-")
    try:
        os.chmod(top, 0o755)
        log = Path(top) / "log"
        log.write_text("readable now\n")
        log.chmod(0o000)
        rep_r, rep_w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            status = 1
            try:
                if os.geteuid() == 0:
                    os.setgid(65534)
                    os.setuid(65534)
                _permission_scenario(str(log), rep_w, go_r)
                status = 0
            finally:
                os._exit(status)
        try:
            with os.fdopen(rep_r) as reports:
                first = json.loads(reports.readline())
                assert first["errors"] == [["open", errno.EACCES, os.strerror(errno.EACCES)]]
                log.chmod(0o644)
                os.write(go_w, b"x")
                second = json.loads(reports.readline())
            assert second == {"lines": ["readable now"], "errors": first["errors"]}
        finally:
            _, status = os.waitpid(pid, 0)
        assert status == 0
    finally:
        for fd in (rep_w, go_r, go_w):
            os.close(fd)
        shutil.rmtree(top)
