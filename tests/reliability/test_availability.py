"""Issue 13's ways to take the service away, each tried for real.

accept errors (4), a daemon that dies after detaching (5), idle clients (6),
clients that never read (7), SIGTERM under load (8), a crash loop (9).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from kernelish.components.daemon import control

from .._support import LineClient, ProcessReaper, gone, wait_until
from ..test_examples import EXAMPLES
from ._harness import figures, launch_app, start_app

KERNELISH = [sys.executable, "-m", "kernelish"]


def kernelish(*argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KERNELISH, *argv], capture_output=True, text=True, timeout=timeout)


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def holders_of(path: Path) -> list[int]:
    """Live processes that have ``path`` open (how a detached daemon that
    should not exist is found: by what it holds, never by name)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error):
            if any(f.path == str(path) for f in proc.open_files()):
                found.append(proc.pid)
    return found


# -- 4. accept errors -------------------------------------------------------------------


def test_emfile_backs_off_and_the_listener_survives(tmp_path: Path, procs: ProcessReaper) -> None:
    app = start_app(
        tmp_path, procs, "--start-children", "1", "--min-spare", "1", "--max-spare", "1",
        "--max-children", "1", "--requests", "50", "--child-nofile", "64",
    )  # fmt: skip
    first = LineClient(app.port)
    child = int(first.ask("PID"))
    assert first.ask("FILL 0.8") == "FILLING"
    first.finish()  # the child now holds every descriptor it may have, for 0.8 s
    cpu_before = cpu_seconds(child)
    start = time.monotonic()
    second = LineClient(app.port, timeout=5)
    assert second.ask("PING") == "PONG", "the listener survived EMFILE"
    waited = time.monotonic() - start
    second.finish()
    burned = cpu_seconds(child) - cpu_before
    third_start = time.monotonic()
    third = LineClient(app.port)
    assert third.ask("PID") == str(child), "the same child, its listener intact"
    third.finish()
    third_s = time.monotonic() - third_start
    log = app.log_text()
    reported = log.count(f"{child}: accept error 24:")
    warned = log.count(f"{child}: accept on 127.0.0.1:{app.port}: Too many open files")
    figures(
        "accept_emfile", served_after_s=waited, next_served_s=third_s, child_cpu_s=burned,
        failure_events=reported, log_lines=warned,
    )  # fmt: skip
    assert 0.7 < waited < 2.5, "served once descriptors were free again, within the backoff"
    assert reported == 1, "one FailureEvent per burst"
    assert warned == 1, "one log line per burst"
    assert burned < 0.3, "backing off, not spinning"
    assert third_s < 0.5, "the burst is over"


def test_status_says_when_the_daemon_no_longer_listens(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    pidfile = tmp_path / "app.pid"
    app = start_app(
        tmp_path, procs, "--start-children", "1", "--min-spare", "1", "--max-spare", "1",
        "--max-children", "2", "--requests", "1", "--usr1-drops-listener", "--pidfile",
        str(pidfile),
    )  # fmt: skip
    out = kernelish("status", str(pidfile))
    assert out.returncode == 0, out.stderr
    assert f"listening on 127.0.0.1:{app.port}" in out.stdout.splitlines()[0]
    os.kill(app.pid, signal.SIGUSR1)  # the parent loses its listener ...
    client = LineClient(app.port)  # ... and the child that holds it serves its last
    assert client.ask("PING") == "PONG"
    client.finish()
    wait_until(
        lambda: not any(control.listening_addresses(p) for p in app.processes()),
        5,
        "no process of the daemon to listen",
    )
    out = kernelish("status", str(pidfile))
    figures("status_not_listening", exit=out.returncode)
    assert out.returncode == 3, out
    assert f"NOT LISTENING on 127.0.0.1:{app.port}" in out.stdout.splitlines()[0]


# -- 5. a daemon that dies after detaching ------------------------------------------------


@pytest.mark.parametrize(
    "example",
    ["preforking.py", "forking.py", "server_tcp_preforking.py", "server_tcp_forking.py"],
)
def test_port_in_use_fails_the_launch_with_the_bind_error(tmp_path: Path, example: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        logfile, pidfile = tmp_path / "x.log", tmp_path / "x.pid"
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, str(EXAMPLES / example), str(port), str(logfile), str(pidfile)],
            capture_output=True, text=True, timeout=20, cwd=EXAMPLES,
        )  # fmt: skip
        took = time.monotonic() - start
    figures(f"port_in_use[{example}]", exit=proc.returncode, seconds=took)
    assert proc.returncode == 1
    assert f"bind 127.0.0.1:{port}: Address already in use" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "TypeError" not in proc.stderr, proc.stderr
    assert proc.stdout == ""
    wait_until(lambda: not holders_of(logfile), 5, "no daemon process left")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.log"], "no pidfile, no socket"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become nobody")
def test_a_pidfile_directory_the_daemon_cannot_write_fails_the_launch(tmp_path: Path) -> None:
    where = Path(tempfile.mkdtemp(prefix="kernelish-rootdir-"))  # root's, 0755
    try:
        os.chmod(where, 0o755)
        pidfile = where / "app.pid"
        proc = launch_app(tmp_path, "--user", "nobody", "--pidfile", str(pidfile))
        assert proc.returncode == 1
        uid = pwd.getpwnam("nobody").pw_uid
        assert (
            f"app.py: PidfileError: cannot write pidfile '{pidfile}': Permission denied "
            f"(its directory '{where}' must be writable by uid {uid})"
        ) in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        wait_until(lambda: not holders_of(tmp_path / "app.log"), 5, "no daemon process left")
        assert list(where.iterdir()) == []
    finally:
        shutil.rmtree(where, ignore_errors=True)


def test_a_bad_configuration_is_one_line_naming_the_field(tmp_path: Path) -> None:
    proc = launch_app(tmp_path, "--start-children", "2", "--min-spare", "5", "--max-spare", "2")
    assert proc.returncode == 1
    assert proc.stderr.startswith("app.py: DaemonConfigError: bad Daemon configuration: ")
    assert len(proc.stderr.splitlines()) == 1 and "max_spare" in proc.stderr, proc.stderr
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "preforking.py"), "0", str(tmp_path / "no" / "x.log")],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert proc.returncode == 1
    assert len(proc.stderr.splitlines()) == 1 and "logfile=" in proc.stderr, proc.stderr
    out = kernelish("status", str(tmp_path / "no" / "x.pid"))
    assert out.returncode == 1 and len(out.stderr.splitlines()) == 1, out.stderr


# -- 6. idle clients ------------------------------------------------------------------------


def start_example(tmp_path: Path, procs: ProcessReaper, name: str, *args: str) -> tuple[int, int]:
    """Start an example daemon; (port, pid of its parent)."""
    pidfile = tmp_path / "x.pid"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "0", str(tmp_path / "x.log"), str(pidfile), *args],
        capture_output=True, text=True, timeout=20, cwd=EXAMPLES,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    port = int(proc.stdout.splitlines()[0].split("=")[1])
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 5, "a pid"))
    procs.add(pid)
    procs.add_session(pid)
    return port, pid


@pytest.mark.parametrize(("example", "pool"), [("preforking.py", 10), ("forking.py", 3)])
def test_silent_clients_are_cut_off_and_the_pool_serves_again(
    tmp_path: Path, procs: ProcessReaper, example: str, pool: int
) -> None:
    port, _pid = start_example(tmp_path, procs, example, "--timeout", "1")
    silent = []
    for i in range(pool):
        sock = socket.create_connection(("127.0.0.1", port))
        if i % 2:
            sock.sendall(b"PIN")  # half a line
        silent.append((sock, time.monotonic()))
    lasted = []
    for sock, since in silent:
        sock.settimeout(6)
        try:
            assert sock.recv(100) == b"", "closed by the server, nothing said"
        except ConnectionResetError:
            pass
        lasted.append(time.monotonic() - since)
        sock.close()
    start = time.monotonic()
    client = LineClient(port)
    assert client.ask("PING") == "PONG"
    client.finish()
    served = time.monotonic() - start
    figures(f"idle_timeout[{example}]", clients=pool, longest_s=max(lasted), next_served_s=served)
    assert min(lasted) >= 0.9, "not before the timeout"
    assert max(lasted) < 4.0, "every silent client cut off (timeout 1 s, plus the pool's ramp)"
    assert served < 1.0


# -- 7. clients that never read -------------------------------------------------------------


def vm_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


#: What a child may grow by while a client pipelines without reading: the
#: output held below HighMark (256 KiB) plus the largest reply, and one read
#: (64 KiB) of parsed requests waiting -- about 1.2 MiB measured.
RSS_BOUND = 4 * 2**20


def test_a_client_that_never_reads_cannot_grow_the_child(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    port, _pid = start_example(tmp_path, procs, "preforking.py")
    client = LineClient(port)
    child = int(client.ask("PID"))
    assert client.ask("PEEK").startswith("Event Queue:")
    while client.readline() != "DONE":
        pass
    before = vm_rss(child)
    requests = b"PEEK\r\n" * 100_000
    sock = client.sock
    sock.setblocking(False)
    sent, idle_since = 0, time.monotonic()
    peak = before
    while sent < len(requests) and time.monotonic() - idle_since < 1.0:
        try:
            sent += sock.send(requests[sent : sent + 65536])
            idle_since = time.monotonic()
        except BlockingIOError:
            time.sleep(0.01)
        peak = max(peak, vm_rss(child))
    # What the child read it answers meanwhile: watch until its size has not
    # grown for half a second (without backpressure it grows for many seconds).
    end, still_since = time.monotonic() + 3.0, time.monotonic()
    while time.monotonic() < end and time.monotonic() - still_since < 0.5:
        time.sleep(0.025)
        rss = vm_rss(child)
        if rss > peak:
            peak, still_since = rss, time.monotonic()
    grown = peak - before
    figures(
        "never_reads", requests_sent=sent // 6, rss_before_mib=before / 2**20,
        rss_peak_mib=peak / 2**20, grown_mib=grown / 2**20,
    )  # fmt: skip
    assert grown < RSS_BOUND
    # Reading again, the client gets its replies: the server resumed.
    sock.setblocking(True)
    sock.settimeout(5)
    got = b""
    while got.count(b"DONE\r\n") < 50:
        got += sock.recv(1 << 20)
    client.close()


# -- 8. SIGTERM under load ------------------------------------------------------------------


def test_sigterm_under_load_loses_no_accepted_connection(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    app = start_app(
        tmp_path, procs, "--start-children", "10", "--min-spare", "10", "--max-spare", "10",
        "--max-children", "12", "--requests", "50", "--shutdown-timeout", "5", min_waiting=10,
    )  # fmt: skip
    clients = [LineClient(app.port) for _ in range(8)]
    for client in clients:
        client.send("SLEEP 1.5")
    wait_until(
        lambda: sum(s == "r" for s, _pid in app.status()["slots"]) >= 8, 5, "8 requests under way"
    )
    start = time.monotonic()
    os.kill(app.pid, signal.SIGTERM)

    def refused() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", app.port), timeout=0.5) as probe:
                probe.settimeout(0.5)
                return probe.recv(1) == b""
        except (ConnectionRefusedError, ConnectionResetError):
            return True
        except TimeoutError:
            return False

    wait_until(refused, 1.0, "new connections refused")
    refused_s = time.monotonic() - start
    answered = 0
    for client in clients:
        assert client.readline() == "SLEPT", "the reply promised before TERM"
        assert client.closed_by_server()
        answered += 1
        client.close()
    wait_until(lambda: not app.processes(), 5, "every daemon process to exit")
    gone_s = time.monotonic() - start
    figures("graceful_term", in_flight=8, answered=answered, refused_s=refused_s, gone_s=gone_s)
    assert refused_s < 1.0, "stopped accepting first"
    assert gone_s < 3.0, "children left as soon as they had answered"
    killed = [p for p, status, _t in app.status()["exits"] if os.WIFSIGNALED(status)]
    assert killed == [], "nobody needed KILL"


@pytest.mark.parametrize(
    "example",
    ["preforking.py", "forking.py", "server_tcp_preforking.py", "server_tcp_forking.py"],
)
def test_sigterm_lets_an_example_answer_every_request_it_was_sent(
    tmp_path: Path, procs: ProcessReaper, example: str
) -> None:
    port, pid = start_example(tmp_path, procs, example)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow reader
    sock.connect(("127.0.0.1", port))
    sock.settimeout(10)
    # 8000 requests whose replies (about 8 MiB, more than the socket buffers
    # take) the client does not read yet: the child is in the middle of them
    # when TERM comes.
    sock.sendall(b"PEEK\r\n" * 8000)
    time.sleep(0.3)  # the child reads and answers what it can
    os.kill(pid, signal.SIGTERM)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(1 << 20):
            data += chunk
    sock.close()
    done = data.count(b"\r\nDONE\r\n")
    figures(f"graceful_term[{example}]", sent=8000, answered=done, octets=len(data))
    assert done == 8000, "every request sent before TERM answered, then the connection closed"
    wait_until(lambda: gone(pid), 10, "the daemon to exit")


# -- 9. a crash loop ------------------------------------------------------------------------


def test_a_child_that_dies_at_start_is_not_reforked_at_full_speed(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    flag = tmp_path / "die"
    flag.touch()
    pidfile = tmp_path / "app.pid"
    app = start_app(
        tmp_path, procs, "--start-children", "2", "--min-spare", "2", "--requests", "50",
        "--die-at-start", str(flag), "--pidfile", str(pidfile), min_waiting=0,
    )  # fmt: skip
    window = 3.0
    time.sleep(window)  # an observation window, not a wait for something
    deaths = len(app.status()["exits"])
    out = kernelish("status", str(pidfile))
    assert out.returncode == 0, out.stderr
    assert "crash-loop brake: " in out.stdout.splitlines()[0], out.stdout
    log = app.log_text()
    assert "died at start (exit status 3)" in log
    assert "crash-loop brake, next fork in" in log
    flag.unlink()
    start = time.monotonic()
    wait_until(lambda: app.waiting() >= 2, 10, "the pool back")
    recovered = time.monotonic() - start
    figures("crash_loop", window_s=window, deaths=deaths, recovered_s=recovered)
    assert deaths <= 8, "a few probes, not hundreds of forks"
    assert recovered < 5.0
    assert "the crash-loop brake is off" in app.log_text()
    assert not gone(app.pid)


def test_sigquit_stops_at_once_and_leaves_nothing(tmp_path: Path, procs: ProcessReaper) -> None:
    pidfile = tmp_path / "app.pid"
    app = start_app(
        tmp_path, procs, "--start-children", "2", "--min-spare", "2", "--requests", "50",
        "--pidfile", str(pidfile), min_waiting=2,
    )  # fmt: skip
    busy = LineClient(app.port)
    busy.send("SLEEP 5")
    wait_until(lambda: any(s == "r" for s, _pid in app.status()["slots"]), 5, "a request")
    start = time.monotonic()
    os.kill(app.pid, signal.SIGQUIT)
    assert busy.closed_by_server()
    busy.close()
    wait_until(lambda: not app.processes(), 5, "every daemon process to exit")
    took = time.monotonic() - start
    figures("sigquit", gone_s=took)
    assert took < 1.0
    assert not pidfile.exists() and not control.socket_path(pidfile).exists()
    assert "fast stop (SIGQUIT): sending KILL" in app.log_text()
