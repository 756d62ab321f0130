"""Issue 13's two holes and the control socket, tried as a hostile local user.

The daemon starts as root and becomes ``nobody``; the service user owns the
directory of the logfile and the pidfile, as docs/systemd.md says it must.
Every test needs root (to become another user for real).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from kernelish.components.daemon import control

from .._support import LineClient, ProcessReaper, gone, wait_until
from ._harness import figures, launch_app, run_as, start_app

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become nobody")

NOBODY = pwd.getpwnam("nobody")
KERNELISH = [sys.executable, "-m", "kernelish"]


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A directory the service user owns, as /var/log/myapp or /run/myapp
    would be (others may traverse it: tmp_path's parents are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="kernelish-security-"))
    os.chmod(path, 0o755)
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_nobody(func: object, *args: object) -> object:
    return run_as(NOBODY.pw_uid, NOBODY.pw_gid, func, *args)


def secret_file(where: Path) -> Path:
    """A root-owned 0600 file standing for /etc/shadow."""
    target = where / "shadow"
    target.write_text("root:$6$secret:19000:0:99999:7:::\n")
    os.chmod(target, 0o600)
    return target


def assert_untouched(target: Path) -> None:
    st = target.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
    assert target.read_text() == "root:$6$secret:19000:0:99999:7:::\n"


# -- 1. the logfile ---------------------------------------------------------------------


@pytest.mark.parametrize("plant", ["symlink", "hardlink"])
def test_a_planted_logfile_is_refused_and_its_target_untouched(
    tmp_path: Path, nobody_dir: Path, plant: str
) -> None:
    target = secret_file(tmp_path)
    log = nobody_dir / "app.log"
    if plant == "symlink":
        assert as_nobody(os.symlink, str(target), str(log)) is None
        why = "is a symbolic link; refusing to follow it"
    else:
        # The service user cannot do this where fs.protected_hardlinks=1;
        # root plays the part of a machine without that protection.
        os.link(target, log)
        why = "has 2 hard links; refusing to write to a file with other names"
    proc = launch_app(tmp_path, "--user", "nobody", logfile=log)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"app.py: LogfileError: logfile '{log}' {why}"]
    assert_untouched(target)
    assert not (tmp_path / "status.json").exists(), "no daemon ran"
    figures(f"logfile_{plant}", exit=proc.returncode, target_uid=target.stat().st_uid)


def test_a_logfile_root_creates_is_handed_over_one_that_exists_is_not(
    tmp_path: Path, procs: ProcessReaper, nobody_dir: Path
) -> None:
    fresh = nobody_dir / "fresh.log"
    app = start_app(
        tmp_path, procs, "--user", "nobody", "--requests", "50",
        logfile=fresh, status_file=nobody_dir / "status.json",
    )  # fmt: skip
    st = fresh.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY.pw_uid, NOBODY.pw_gid, 0o640)
    # So the daemon, now nobody, can rotate it: a new file on SIGHUP.
    fresh.rename(nobody_dir / "fresh.log.1")
    os.kill(app.pid, signal.SIGHUP)
    wait_until(fresh.exists, 5, "a new logfile after SIGHUP")
    assert fresh.stat().st_uid == NOBODY.pw_uid
    os.kill(app.pid, signal.SIGTERM)
    wait_until(lambda: not app.processes(), 10, "the daemon to exit")

    # A file that was there keeps its owner (root's here), as Apache's do,
    # and the daemon writes to it through the descriptor root opened.
    kept = nobody_dir / "kept.log"
    kept.write_text("")
    os.chmod(kept, 0o640)
    app = start_app(
        tmp_path, procs, "--user", "nobody", "--requests", "50",
        logfile=kept, status_file=nobody_dir / "status2.json",
    )  # fmt: skip
    client = LineClient(app.port)
    assert client.ask("LOG 3") == "WROTE 3"
    client.finish()
    st = kept.stat()
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert "L " in kept.read_text()
    figures("logfile_owner", created_uid=NOBODY.pw_uid, existing_uid=st.st_uid)


# -- 2. a forged pidfile ------------------------------------------------------------------

#: Run as nobody: write a pid into the pidfile and hold its flock; with a
#: third argument, also serve a fake control socket answering as kernelish.
HOLDER = r"""
import fcntl, json, os, socket, sys, threading, time
path, pid, fake = sys.argv[1], int(sys.argv[2]), len(sys.argv) > 3
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, f"{pid}\n".encode())
fcntl.flock(fd, fcntl.LOCK_EX)
if fake:
    server = socket.socket(socket.AF_UNIX)
    server.bind(path + ".sock")
    os.chmod(path + ".sock", 0o777)
    server.listen()
    def serve():
        while True:
            conn, _ = server.accept()
            conn.recv(4096)
            answer = {"ok": True, "service": "kernelish.daemon", "pid": pid, "mode": "daemon",
                      "summary": "", "children": {}, "slots": [], "waiting": "USR2", "peek": ""}
            try:
                conn.sendall(json.dumps(answer).encode() + b"\n")
            except OSError:
                pass
            conn.close()
    threading.Thread(target=serve, daemon=True).start()
print("locked", flush=True)
time.sleep(60)
"""

#: A root process with a child: root's sshd, say.
VICTIM = r"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("fake_socket", [False, True])
def test_a_forged_pidfile_never_gets_root_to_signal(
    procs: ProcessReaper, nobody_dir: Path, fake_socket: bool
) -> None:
    pidfile = nobody_dir / "app.pid"
    holder_argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                   sys.executable, "-c", HOLDER, str(pidfile)]  # fmt: skip
    with (
        subprocess.Popen(
            [sys.executable, "-c", VICTIM], stdout=subprocess.PIPE, text=True
        ) as victim,
        subprocess.Popen(
            [*holder_argv, str(victim.pid), *(["fake"] if fake_socket else [])],
            stdout=subprocess.PIPE,
            text=True,
        ) as holder,
    ):
        try:
            procs.add(victim.pid)
            procs.add(holder.pid)
            assert victim.stdout is not None and holder.stdout is not None
            victim_child = procs.add(int(victim.stdout.readline()))
            assert holder.stdout.readline() == "locked\n"
            assert pidfile.stat().st_uid == NOBODY.pw_uid
            said = {}
            for command in ("stop", "peek", "status"):
                out = subprocess.run(
                    [*KERNELISH, command, str(pidfile)], capture_output=True, text=True, timeout=20
                )
                assert out.returncode == 1, (command, out)
                assert out.stdout == "" and len(out.stderr.splitlines()) == 1, (command, out.stderr)
                said[command] = out.stderr.strip()
            for pid in (victim.pid, victim_child):
                assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE, "never signalled"
        finally:
            for proc in (victim, holder):
                proc.kill()
    if fake_socket:
        assert f"served by pid {holder.pid}" in said["stop"], said
    else:
        assert "no control socket" in said["stop"], said
    figures("forged_pidfile", fake_socket=fake_socket, victim_alive=True, refusal=said["stop"])


def test_stop_run_as_another_user_says_why_and_signals_nothing(
    tmp_path: Path, procs: ProcessReaper, nobody_dir: Path
) -> None:
    where = Path(tempfile.mkdtemp(prefix="kernelish-root-"))  # root's, 0711
    try:
        os.chmod(where, 0o711)
        pidfile = where / "app.pid"
        app = start_app(tmp_path, procs, "--pidfile", str(pidfile), "--requests", "50")
        out = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             *KERNELISH, "stop", str(pidfile)],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        assert out.returncode == 1
        assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) == 1, out.stderr
        assert "permission denied" in out.stderr.lower(), out.stderr
        assert not gone(app.pid)
        # Root may: the daemon proven, stopped, nothing left.
        out = subprocess.run(
            [*KERNELISH, "stop", str(pidfile)], capture_output=True, text=True, timeout=20
        )
        assert out.returncode == 0, out.stderr
        assert not app.processes() and not pidfile.exists()
    finally:
        shutil.rmtree(where, ignore_errors=True)


def test_root_stops_a_daemon_running_as_nobody(
    tmp_path: Path, procs: ProcessReaper, nobody_dir: Path
) -> None:
    pidfile = nobody_dir / "app.pid"
    app = start_app(
        tmp_path, procs, "--user", "nobody", "--pidfile", str(pidfile), "--requests", "50",
        status_file=nobody_dir / "status.json", min_waiting=2,
    )  # fmt: skip
    assert pidfile.stat().st_uid == NOBODY.pw_uid
    kids = app.children()
    out = subprocess.run(
        [*KERNELISH, "stop", str(pidfile)], capture_output=True, text=True, timeout=20
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"Stopped daemon {app.pid} and {len(kids)} children")
    assert not app.processes()


# -- 3. the control socket never stalls the daemon -------------------------------------------


def test_a_dribbling_control_client_never_delays_the_daemon(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    pidfile = tmp_path / "app.pid"
    app = start_app(
        tmp_path, procs, "--start-children", "2", "--min-spare", "2", "--requests", "50",
        "--pidfile", str(pidfile), min_waiting=2,
    )  # fmt: skip
    dribbler = socket.socket(socket.AF_UNIX)
    dribbler.connect(str(control.socket_path(pidfile)))
    stop = threading.Event()

    def dribble() -> None:
        with contextlib.suppress(OSError):
            for byte in b'{"cmd": "status", "padding": "' + b"x" * 100:
                dribbler.send(bytes([byte]))
                if stop.wait(0.5):
                    return

    thread = threading.Thread(target=dribble)
    thread.start()
    try:
        time.sleep(0.6)  # the dribbler is under way
        # The pool: a child killed is replaced at once.
        victim = app.children()[0]
        start = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: app.waiting() >= 2 and victim not in app.children(), 5, "a replacement")
        replaced = time.monotonic() - start
        # Another control client is answered at once.
        start = time.monotonic()
        with control.verified(pidfile) as daemon:
            assert daemon.pid == app.pid
        answered = time.monotonic() - start
        # The dribbler is cut off after REQUEST_TIMEOUT, its request unread.
        dribbler.settimeout(control.REQUEST_TIMEOUT + 3)
        start = time.monotonic()
        try:
            ending = dribbler.recv(100)
        except ConnectionResetError:  # a byte dribbled in after the last read: RST
            ending = b""
        assert ending == b""
        cut = time.monotonic() - start + 0.6 + replaced + answered
    finally:
        stop.set()
        thread.join()
        dribbler.close()
    figures("dribbling_control_client", replaced_s=replaced, answered_s=answered, cut_s=cut)
    assert replaced < 1.0
    assert answered < 1.0
    assert cut < control.REQUEST_TIMEOUT + 1.0


def test_an_overlong_control_request_is_refused_without_reading_on(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    pidfile = tmp_path / "app.pid"
    start_app(tmp_path, procs, "--pidfile", str(pidfile), "--requests", "50")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(control.socket_path(pidfile)))
        with contextlib.suppress(OSError):
            sock.sendall(b"x" * (control.MAX_REQUEST + 10))
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(4096):
                data += chunk
    assert control.decode(data) == {"ok": False, "error": "request too long"}
