"""``kernelish status|peek|stop PIDFILE`` against real detached daemons, over
the daemon's control socket (``<pidfile>.sock``, mode 0600, peer checked)."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kernelish import _control

from ._appsupport import children_of, daemon_pids, start_daemon
from ._support import ProcessReaper, wait_until


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = _control.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_prints_scoreboard_and_children(
    tmp_path: Path, procs: ProcessReaper, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = start_daemon(tmp_path, procs, children=3)
    kids = children_of(pid)
    pidfile = str(tmp_path / "d.pid")
    wait_until(
        lambda: "Scoreboard [www " in _control.status_text(Path(pidfile)), 5, "3 waiting children"
    )
    code, out, err = _run(capsys, "status", pidfile)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"Daemon {pid} (pre-forking)"), out
    assert re.match(r"Scoreboard \[www *\] \d+ slots", lines[1]), out
    assert lines[2].split() == ["PID", "ROLE", "SLOT", "STATE", "REQUESTS", "CPU(s)", "RSS(MiB)"]
    rows = {int(line.split()[0]): line.split() for line in lines[3:-1]}
    assert rows[pid][1] == "parent", out
    assert set(rows) == {pid, *kids}, (out, kids)
    for kid in kids:
        row = rows[kid]
        assert row[1] == "child" and row[3:5] == ["w", "waiting"] and row[5] == "0", out
        float(row[6]), float(row[7])  # CPU seconds and RSS from psutil
    assert lines[-1] == "3 children", out


def test_status_from_the_command_line(tmp_path: Path, procs: ProcessReaper) -> None:
    # Post-forking, no requests yet: no children (children=0: none to wait for).
    pid = start_daemon(tmp_path, procs, "--mode", "fork", "--children", "3", children=0)
    out = subprocess.run(
        [sys.executable, "-m", "kernelish._control", "status", str(tmp_path / "d.pid")],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"Daemon {pid} (forking): Forking server: 0 children")
    assert out.stdout.endswith("0 children\n")


def test_peek_prints_the_usr2_dump(
    tmp_path: Path, procs: ProcessReaper, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = start_daemon(tmp_path, procs)
    code, out, err = _run(capsys, "peek", str(tmp_path / "d.pid"))
    assert code == 0, err
    assert out.startswith("Event Queue:")
    assert "Aliases: Daemon" in out and "POE::Component::Daemon::Scoreboard" in out
    log = tmp_path / "d.log"
    wait_until(lambda: f"{pid}: Event Queue:" in log.read_text(), 5, "the dump in the logfile")
    assert out in log.read_text(), "the very dump the signal wrote"


def test_stop_gracefully(
    tmp_path: Path, procs: ProcessReaper, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = start_daemon(tmp_path, procs)
    everyone = daemon_pids(pid)
    code, out, err = _run(capsys, "stop", str(tmp_path / "d.pid"))
    assert code == 0, err
    assert out.splitlines() == [
        out.splitlines()[0],
        "Nothing had to be killed",
    ]
    assert out.startswith(f"Stopped daemon {pid} and 2 children in ")
    assert not daemon_pids(pid) and len(everyone) == 3
    assert not (tmp_path / "d.pid").exists()
    assert not (tmp_path / "d.pid.sock").exists()


def test_stop_kills_what_ignores_term(
    tmp_path: Path, procs: ProcessReaper, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = start_daemon(tmp_path, procs, "--stubborn")
    kids = children_of(pid)
    # A child ignores SIGTERM from its daemon_child handler on, and says 'wait'
    # right after: before that, a TERM would end it and it would not need KILL.
    pidfile = tmp_path / "d.pid"
    wait_until(lambda: "2 idle" in _control.status_text(pidfile), 5, "2 waiting children")
    code, out, err = _run(capsys, "stop", str(pidfile), "--timeout", "0.3")
    assert code == 0, err
    killed = out.splitlines()[1]
    assert killed.startswith("Killed after 0.3s (ignored SIGTERM): ")
    assert set(kids) <= {int(p) for p in killed.split(": ", 1)[1].split()}
    assert not daemon_pids(pid)


def test_not_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pidfile = tmp_path / "d.pid"
    for command in ("status", "peek", "stop"):
        code, out, err = _run(capsys, command, str(pidfile))
        assert code == 1 and out == ""
        assert (
            err == f"kernelish {command}: no pidfile {str(pidfile)!r}: the daemon is not running\n"
        )
    pidfile.write_text("999999\n")  # stale: nobody holds the lock
    code, _, err = _run(capsys, "stop", str(pidfile))
    assert code == 1 and "stale (pid 999999, not locked)" in err


def _ask(path: Path, request: dict[str, object]) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    answer: dict[str, object] = json.loads(data)
    return answer


def test_control_socket_is_owner_only(tmp_path: Path, procs: ProcessReaper) -> None:
    pid = start_daemon(tmp_path, procs, children=1)
    sock = tmp_path / "d.pid.sock"
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert sock.stat().st_uid == os.geteuid()
    answer = _ask(sock, {"cmd": "status"})
    assert answer["ok"] and answer["pid"] == pid and answer["mode"] == "pre-forking"
    assert _ask(sock, {"cmd": "nope"}) == {"ok": False, "error": "unknown command 'nope'"}
    assert _ask(sock, {"no": "cmd"})["ok"] is False


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_control_socket_checks_peer_credentials(tmp_path: Path, procs: ProcessReaper) -> None:
    # Root may open the door to anyone; the daemon still checks who knocks
    # (SO_PEERCRED).  A directory others may traverse, for the other user.
    where = Path(tempfile.mkdtemp(prefix="kctl-"))
    try:
        os.chmod(where, 0o711)
        pid = start_daemon(tmp_path, procs, pidfile=where / "d.pid", children=1)
        sock = where / "d.pid.sock"
        os.chmod(sock, 0o666)
        nobody = pwd.getpwnam("nobody").pw_uid
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            try:
                os.close(r)
                os.setuid(nobody)
                try:
                    answer = _ask(sock, {"cmd": "status"})
                except Exception as exc:  # reported to the test, not raised into pytest
                    answer = {"exception": repr(exc)}
                os.write(w, json.dumps(answer).encode())
            finally:
                os._exit(0)
        os.close(w)
        data = b""
        while chunk := os.read(r, 4096):
            data += chunk
        os.close(r)
        os.waitpid(child, 0)
        assert json.loads(data) == {"ok": False, "error": "permission denied"}
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not daemon_pids(pid), 5, "the daemon to exit")
    finally:
        shutil.rmtree(where, ignore_errors=True)


def test_listening_addresses_are_psutils() -> None:
    """listening_addresses finds what psutil's net_connections does, asking
    this process's sockets or reading /proc for another's: listening
    TCP (v4, v6, v4-mapped) and bound UDP sockets; not a bound TCP socket
    that does not listen, nor an unbound UDP one."""
    import psutil

    from kernelish.components.daemon import control as ctl

    made = [
        socket.socket(socket.AF_INET, socket.SOCK_STREAM),
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM),
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
        socket.socket(socket.AF_INET, socket.SOCK_STREAM),
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM),
    ]
    try:
        made[0].bind(("127.0.0.1", 0))
        made[1].bind(("::1", 0))
        made[2].bind(("::ffff:127.0.0.1", 0))
        made[3].bind(("0.0.0.0", 0))
        made[4].bind(("127.0.0.1", 0))  # bound, not listening
        for sock in made[:3]:
            sock.listen()
        expected = set()
        for conn in psutil.Process().net_connections("inet"):
            if conn.status == psutil.CONN_LISTEN or (
                conn.status == psutil.CONN_NONE and conn.laddr
            ):
                host, port = conn.laddr.ip, conn.laddr.port
                expected.add(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        found = ctl.listening_addresses(os.getpid())
        assert found == sorted(expected)
        assert ctl._proc_listening(os.getpid()) == found  # another process's way
        for sock in made[:4]:
            host, port = sock.getsockname()[:2]
            assert (f"[{host}]:{port}" if ":" in host else f"{host}:{port}") in found
        assert f"127.0.0.1:{made[4].getsockname()[1]}" not in found
    finally:
        for sock in made:
            sock.close()
    assert ctl.listening_addresses(2**22 + 12345) == []  # no such process


def test_listening_addresses_leave_a_blocking_socket_blocking() -> None:
    """Asking this process's sockets never changes them, even with a default
    timeout set (a socket object made on an fd would make it non-blocking)."""
    listener = socket.create_server(("127.0.0.1", 0))
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(5.0)
    try:
        assert os.get_blocking(listener.fileno())
        port = listener.getsockname()[1]
        assert f"127.0.0.1:{port}" in ctl_listening()
        assert os.get_blocking(listener.fileno())
    finally:
        socket.setdefaulttimeout(previous)
        listener.close()


def ctl_listening() -> list[str]:
    from kernelish.components.daemon import control as ctl

    return ctl.listening_addresses(os.getpid())
