"""ServerHTTP on the Daemon's pools: in-process under a Daemon without
children, and black-box with ``examples/http_preforking.py`` (pre-forking
and, with ``--postfork``, post-forking) as real detached daemons; the
status page in a real browser (headless Chromium) and the metrics read
with Prometheus's own parser."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from kernelish import ARG0, ARG1, HandlerArgs, poe_kernel
from kernelish.components.daemon import Daemon, DaemonComponent
from kernelish.components.server_http import ServerHTTP

from ._http import HTTPPeer
from ._support import ProcessReaper, gone, wait_until

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "http_preforking.py"


def test_in_process_under_a_daemon_without_children() -> None:
    def hello(_: HandlerArgs) -> None:
        _[ARG1].content = b"hello " + _[ARG0].path.encode()
        _[ARG1].respond()

    server = ServerHTTP(Address="127.0.0.1", Daemon=True, Handler=hello)
    DaemonComponent.new(alias="Daemon", detach=False).create_session()
    peer = HTTPPeer(server.port)
    peer.request("/x")
    assert peer.wait_replies(1)[0].body == b"hello /x"
    Daemon.shutdown()  # daemon_shutdown: the idle connection closes, the listener too
    peer.wait_eof()
    poe_kernel.run()


@dataclass
class Running:
    port: int
    pid: int
    pidfile: Path
    logfile: Path


def start(tmp: Path, reaper: ProcessReaper, *args: str) -> Running:
    pidfile, logfile = tmp / "http.pid", tmp / "http.log"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "0", str(logfile), str(pidfile), *args],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("PORT="), proc.stdout
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="pid"))
    reaper.add_session(os.getsid(pid))
    reaper.add(pid)
    return Running(int(first.split("=", 1)[1]), pid, pidfile, logfile)


def get(port: int, path: str, conn: http.client.HTTPConnection | None = None) -> tuple[int, str]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        if own:
            conn.close()


def pid_of(body: str) -> int:
    match = re.search(r"\$PID=(\d+);", body)
    assert match, body
    return int(match.group(1))


def test_preforking_example(tmp_path: Path, procs: ProcessReaper) -> None:
    daemon = start(tmp_path, procs)
    status, body = get(daemon.port, "/")
    assert status == 200 and 'href="/static/something.txt"' in body
    assert get(daemon.port, "/static/something.txt") == (200, "Something static.\n")
    first = pid_of(get(daemon.port, "/dynamic/debug.txt")[1])
    second = pid_of(get(daemon.port, "/dynamic/debug.txt")[1])
    assert first != second, "requests=1: each child serves one request"
    for child in (first, second):
        assert child != daemon.pid
    status, auto = get(daemon.port, "/server-status?auto")
    assert status == 200 and "Mode: pre-forking" in auto and f"ParentPid: {daemon.pid}" in auto
    log = daemon.logfile.read_text()
    assert re.search(r'\d+: 127\.0\.0\.1 - - \[[^]]+\] "GET /dynamic/debug.txt HTTP/1.1" 200', log)
    os.kill(daemon.pid, signal.SIGTERM)
    wait_until(lambda: gone(daemon.pid), 10, "the daemon to stop")


def test_requests_per_child_counts_http_requests(tmp_path: Path, procs: ProcessReaper) -> None:
    """requests=3: three requests on one keep-alive connection, one child;
    then that child retires and the next connection meets another."""
    daemon = start(tmp_path, procs, "--requests", "3")
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    pids = {pid_of(get(daemon.port, "/dynamic/a", conn)[1]) for _ in range(3)}
    assert len(pids) == 1
    child = pids.pop()
    wait_until(lambda: gone(child), 10, "the child to retire after its third request")
    conn.close()
    assert pid_of(get(daemon.port, "/dynamic/b")[1]) != child


def test_postforking_example_a_child_per_connection(tmp_path: Path, procs: ProcessReaper) -> None:
    daemon = start(tmp_path, procs, "--postfork")
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    one = {pid_of(get(daemon.port, "/dynamic/a", conn)[1]) for _ in range(2)}
    assert len(one) == 1, "keep-alive: the connection's child serves both"
    child = one.pop()
    assert psutil.Process(child).ppid() == daemon.pid
    conn.close()
    wait_until(lambda: gone(child), 10, "the child to exit with its connection")
    assert pid_of(get(daemon.port, "/dynamic/b")[1]) != child


def test_metrics_parse_with_prometheus_own_parser(tmp_path: Path, procs: ProcessReaper) -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    daemon = start(tmp_path, procs)
    status, text = get(daemon.port, "/metrics")
    assert status == 200
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    info = families["kernelish_daemon_info"].samples[0]
    assert info.labels == {"mode": "pre-forking", "parent_pid": str(daemon.pid)}
    roles = {s.labels["role"] for s in families["kernelish_process_resident_memory_bytes"].samples}
    assert roles == {"parent", "child"}
    assert families["kernelish_slot_requests"].type == "counter"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_status_page_in_a_real_browser(tmp_path: Path, procs: ProcessReaper) -> None:
    daemon = start(tmp_path, procs, "--requests", "50")
    for _ in range(5):
        get(daemon.port, "/dynamic/warm-up")
    url = f"http://127.0.0.1:{daemon.port}/server-status?refresh=0"
    assert CHROMIUM is not None
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=60
    ).stdout
    assert '<b id="mode">pre-forking</b>' in dom, dom[:2000]
    assert re.search(r'id="scoreboard">\[[wr][wrfF. ]*\]', dom), "the scoreboard"
    rows = re.findall(r"<tr><td>(\d+)</td><td class=\"l\">(parent|child)</td>", dom)
    assert (str(daemon.pid), "parent") in rows and any(role == "child" for _, role in rows)
    png = tmp_path / "status.png"
    subprocess.run(
        [*common, f"--screenshot={png}", "--window-size=1000,600", url],
        capture_output=True,
        timeout=60,
    )
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


QUOTA_SERVER = """
import os
from kernelish import ARG0, ARG1, KERNEL, poe_kernel
from kernelish.components.daemon import DaemonComponent
from kernelish.components.server_http import ServerHTTP

def slow(_):
    # The answer waits 0.5 s: a second connection arrives meanwhile.
    _[KERNEL].delay_set("answer", 0.5, _[ARG1])

def answer(_):
    response = _[ARG0]
    response.content = f"pid={os.getpid()}".encode()
    response.respond()

server = ServerHTTP(Address="127.0.0.1", Daemon=True, Handler=slow, AccessLog=False,
                    InlineStates={"answer": answer})
print(f"PORT={server.port}", flush=True)
DaemonComponent.spawn(start_children=1, max_children=1, min_spare=1, max_spare=1, requests=1)
poe_kernel.run()
"""


def test_a_child_on_its_last_request_accepts_no_more(tmp_path: Path, procs: ProcessReaper) -> None:
    """requests=1 with one child: a connection that arrives while the child's
    one request is under way waits for the next child -- the child stops
    accepting when its last request starts, not when it is answered."""
    script = tmp_path / "quota.py"
    script.write_text(QUOTA_SERVER)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    procs.add_session(proc.pid)
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split("=", 1)[1])
    first = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    first.request("GET", "/one")
    wait_until(lambda: any(c.ppid() == proc.pid for c in psutil.Process(proc.pid).children()))
    second = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    second.connect()  # queued while the first request is under way
    second.request("GET", "/two")
    one = first.getresponse().read().decode()
    two = second.getresponse().read().decode()
    first.close()
    second.close()
    assert one.startswith("pid=") and two.startswith("pid=")
    assert one != two, "the child served past its requests=1"
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=15)
    proc.stdout.close()
