"""``kernelish serve`` (issue 18, WSGI): a bare WSGI callable and a Flask
application served as a real subprocess on real sockets -- GET/POST,
keep-alive off and on, HUP reload of a changed module while a request is
in flight, graceful TERM, max-requests recycling, issue 18's bad-input
list, slowloris -- and the adapter's PEP 3333 corners in-process; the
example ``examples/wsgi_app.py`` black-box.  Every process is ended by pid."""

from __future__ import annotations

import http.client
import os
import re
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from kernelish import poe_kernel
from kernelish.components.server_http import ServerHTTP
from kernelish.wsgi import ServeConfigError, WSGIHandler, import_app, serve

from ._http import HTTPPeer, parse_replies
from ._support import ProcessReaper, gone, wait_until

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "wsgi_app.py"

#: The bare WSGI application every subprocess test serves (``wsgiapp:application``).
APP = """
import os, time

VERSION = "v1"


def application(environ, start_response):
    path = environ["PATH_INFO"]
    method = environ["REQUEST_METHOD"]
    if path == "/slow":
        open("slow.started", "w").close()
        time.sleep(float(environ["QUERY_STRING"] or 1))
    if path == "/raise":
        raise RuntimeError("the application raised on purpose")
    if path == "/halfway":
        def halfway():
            yield b"first part, "
            raise RuntimeError("the iterator raised halfway")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return halfway()
    if path == "/badtype":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["a str, not bytes"]
    if path == "/split":
        start_response("200 OK", [("X-Split", "a\\r\\nX-Injected: 1")])
        return [b"split"]
    if path == "/big":
        class Big:
            def __iter__(self):
                for _ in range(400):
                    yield b"x" * 65536
            def close(self):
                open("big.closed", "w").close()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Big()
    body = environ["wsgi.input"].read()
    text = f"{VERSION} pid={os.getpid()} {method} {path} {body.decode()}"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
    return [text.encode()]
"""

FLASK_APP = """
import os
from flask import Flask, jsonify, request

def create_app(greeting):
    app = Flask(__name__)

    @app.get("/hello/<name>")
    def hello(name):
        return f"{greeting}, {name}! ({os.getpid()})"

    @app.post("/json")
    def echo():
        return jsonify(got=request.get_json(), pid=os.getpid())

    return app
"""


class Served:
    """``kernelish serve SPEC -b 127.0.0.1:0 ARGS`` in ``tmp``, its port read;
    stopped (TERM, then KILL) and waited for when the test ends."""

    running: list[Any] = []

    def __init__(
        self, tmp: Path, procs: ProcessReaper, spec: str, *args: str, source: str = APP
    ) -> None:
        (tmp / f"{spec.split(':')[0]}.py").write_text(source)
        self.tmp = tmp
        self.log = tmp / "error.log"
        self.access = tmp / "access.log"
        command = [
            sys.executable,
            "-m",
            "kernelish",
            "serve",
            spec,
            "-b",
            "127.0.0.1:0",
            "--chdir",
            str(tmp),
            "--error-logfile",
            str(self.log),
            "--access-logfile",
            str(self.access),
            *args,
        ]
        # Rewritten modules keep their size: no stale bytecode on reload.
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        procs.add(self.proc.pid)
        procs.add_session(self.proc.pid)
        self.pid = self.proc.pid
        Served.running.append(self)
        line = _readline(self.proc, 15)
        assert line.startswith("PORT="), line + self.log_text()
        self.port = int(line.split("=", 1)[1])
        wait_until(lambda: len(self.children()) >= 1 and _answers(self.port), 15, "a worker")

    def children(self) -> set[int]:
        try:
            kids = psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return set()
        out = set()
        for kid in kids:
            try:
                if kid.status() != psutil.STATUS_ZOMBIE:
                    out.add(kid.pid)
            except psutil.NoSuchProcess:
                continue
        return out

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def get(self, path: str = "/", timeout: float = 10) -> tuple[int, str, dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode(), dict(response.getheaders())
        finally:
            conn.close()


@pytest.fixture(autouse=True)
def _stop_served() -> Any:
    yield
    while Served.running:
        proc = Served.running.pop().proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def _readline(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line of ``proc``'s stdout, waited for at most ``timeout``."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        data = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                break
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace").split("\n")[0]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 ")
    except OSError:
        return False


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` and read until the server closes (bounded by ``timeout``)."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    return got


def pid_in(body: str) -> int:
    match = re.search(r"pid=(\d+)", body)
    assert match, body
    return int(match.group(1))


# -- a bare WSGI callable ---------------------------------------------------------------------


def test_get_and_post_without_keep_alive(tmp_path: Path, procs: ProcessReaper) -> None:
    served = Served(tmp_path, procs, "wsgiapp:application", "-w", "2")
    status, body, headers = served.get("/a/b?q=1")
    assert status == 200 and body.startswith("v1 pid=") and body.endswith("GET /a/b ")
    assert headers["Connection"] == "close" and headers["Server"] == "kernelish"
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    conn.request("POST", "/form", body=b"x=1&y=2", headers={"Content-Type": "text/plain"})
    response = conn.getresponse()
    assert response.status == 200 and response.read().decode().endswith("POST /form x=1&y=2")
    conn.close()
    # Sync workers close each connection: two pipelined requests get one answer.
    got = raw(served.port, b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\n")
    replies = parse_replies(got)
    assert len(replies) == 1 and replies[0].body.endswith(b"GET /1 ")
    assert served.children() - {served.pid} and served.pid not in served.children()
    # HEAD: the GET's head, no body; Expect: 100-continue: the 100 first.
    head = raw(served.port, b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(
            b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"ok")
        replies = parse_replies(b"".join(iter(lambda: sock.recv(4096), b"")))
    assert replies[0].status == 200 and replies[0].body.endswith(b"POST /e ok")
    access = served.access.read_text()
    assert re.search(
        r'^\d+: 127\.0\.0\.1 - - \[[^]]+\] "POST /form HTTP/1\.1" 200 \d+$', access, re.M
    )


def test_keep_alive_on(tmp_path: Path, procs: ProcessReaper) -> None:
    served = Served(tmp_path, procs, "wsgiapp:application", "-w", "1", "--keep-alive", "2")
    got = raw(
        served.port,
        b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    replies = parse_replies(got)
    assert [r.status for r in replies] == [200, 200]
    assert replies[0].header("connection") is None and replies[1].header("connection") == "close"
    assert pid_in(replies[0].body.decode()) == pid_in(replies[1].body.decode())


def test_hup_reloads_a_changed_module_while_a_request_finishes(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    served = Served(tmp_path, procs, "wsgiapp:application", "-w", "2")
    before = served.children()
    assert served.get()[1].startswith("v1 ")
    slow: list[tuple[int, str, dict[str, str]]] = []
    client = threading.Thread(target=lambda: slow.append(served.get("/slow?1.5")))
    client.start()
    wait_until(lambda: (tmp_path / "slow.started").exists(), 10, "the slow request to start")
    (tmp_path / "wsgiapp.py").write_text(APP.replace('VERSION = "v1"', 'VERSION = "v2"'))
    os.kill(served.pid, signal.SIGHUP)
    client.join(15)
    assert slow and slow[0][0] == 200 and slow[0][1].startswith("v1 "), slow
    wait_until(lambda: served.get()[1].startswith("v2 "), 15, "the re-imported application")
    wait_until(
        lambda: not (served.children() & before) and len(served.children()) == 2,
        15,
        "every old worker to be replaced",
    )
    assert "Handling signal: hup" in served.log_text()


def test_term_stops_gracefully(tmp_path: Path, procs: ProcessReaper) -> None:
    served = Served(tmp_path, procs, "wsgiapp:application", "-w", "2")
    workers = served.children()
    slow: list[tuple[int, str, dict[str, str]]] = []
    client = threading.Thread(target=lambda: slow.append(served.get("/slow?1")))
    client.start()
    wait_until(lambda: (tmp_path / "slow.started").exists(), 10, "the slow request to start")
    os.kill(served.pid, signal.SIGTERM)
    client.join(15)
    assert slow and slow[0][0] == 200, "the request under way finishes"
    assert served.proc.wait(15) == 0
    for pid in workers:
        wait_until(lambda pid=pid: gone(pid), 5, f"worker {pid} to exit")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", served.port), timeout=2).close()


def test_max_requests_with_jitter_recycles_workers(tmp_path: Path, procs: ProcessReaper) -> None:
    served = Served(
        tmp_path, procs, "wsgiapp:application", "-w", "1", "--max-requests", "2",
        "--max-requests-jitter", "1",
    )  # fmt: skip
    # The readiness probe was the first worker's first request.
    pids = [pid_in(served.get()[1]) for _ in range(8)]
    runs = [len(list(group)) for group in _runs(pids)]
    assert len(runs) >= 3, pids
    assert all(1 <= n <= 3 for n in runs[1:-1]) and set(runs[1:-1]) <= {2, 3}, pids


def _runs(pids: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for pid in pids:
        if out and out[-1][0] == pid:
            out[-1].append(pid)
        else:
            out.append([pid])
    return out


def test_bad_input_costs_only_that_request(tmp_path: Path, procs: ProcessReaper) -> None:
    served = Served(
        tmp_path, procs, "wsgiapp:application", "-w", "1", "--limit-request-body", "1000",
        "--limit-request-field_size", "1000",
    )  # fmt: skip
    (worker,) = served.children()
    port = served.port
    smuggling = {
        "CL+TE": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "two CL": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
        b"Content-Length: 4\r\n\r\nabcd",
        "bare LF": b"GET / HTTP/1.1\nHost: t\n\n",
        "UTF-8": b"GET /\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n",
    }
    for what, data in smuggling.items():
        replies = parse_replies(raw(port, data))
        assert [r.status for r in replies] == [400], what
    big_field = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
    assert [r.status for r in parse_replies(raw(port, big_field))] == [431]
    big_body = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" + b"b" * 5000
    assert [r.status for r in parse_replies(raw(port, big_body))] == [413]
    # The application raises: 500, logged once with the worker's pid.
    assert served.get("/raise")[0] == 500
    # A body of str, a field that would split the response: 500, nothing injected.
    assert served.get("/badtype")[0] == 500
    status, _, headers = served.get("/split")
    assert status == 500 and "X-Injected" not in headers
    # The iterator raises after the status line went out: the connection is cut.
    halfway = parse_replies(raw(port, b"GET /halfway HTTP/1.1\r\nHost: t\r\n\r\n"))
    assert halfway[0].status == 200 and not halfway[0].complete
    assert halfway[0].body == b"first part, "
    # A client that resets in the middle of a 25 MiB response.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wait_until(lambda: (tmp_path / "big.closed").exists(), 10, "the body's close()")
    # Each cost only its request: the same worker answers, nothing was replaced.
    status, body, _ = served.get("/after")
    assert status == 200 and pid_in(body) == worker
    assert served.children() == {worker}
    log = served.log_text()
    raised = re.findall(
        rf"^{worker}: its handler for GET /raise from 127\.0\.0\.1 raised", log, re.M
    )
    assert len(raised) == 1, log
    assert len(re.findall(r"^\d+: its body's iterator for GET /halfway", log, re.M)) == 1, log


def test_slowloris_holds_one_worker_for_the_header_timeout(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    served = Served(tmp_path, procs, "wsgiapp:application", "-w", "2", "--header-timeout", "1")
    answer: list[bytes] = []
    took: list[float] = []

    def slowloris() -> None:
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
            for octet in b"GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: " + b"s" * 60:
                try:
                    sock.sendall(bytes([octet]))
                except OSError:
                    break
                # One octet every 0.1 s, watching for the server's answer.
                if select.select([sock], [], [], 0.1)[0]:
                    break
            took.append(time.monotonic() - start)
            try:
                answer.append(sock.recv(4096))
            except OSError:
                answer.append(b"")

    def held_by_a_worker() -> bool:
        for pid in served.children():
            try:
                conns = psutil.Process(pid).net_connections()
            except psutil.NoSuchProcess:
                continue
            if any(c.status == psutil.CONN_ESTABLISHED for c in conns):
                return True
        return False

    client = threading.Thread(target=slowloris)
    client.start()
    wait_until(held_by_a_worker, 5, "a worker to hold the slow client")
    # Meanwhile the other worker answers; the parent never holds a connection.
    for _ in range(3):
        assert served.get(timeout=5)[0] == 200
    client.join(15)
    assert answer and answer[0].startswith(b"HTTP/1.1 408"), answer
    assert 0.9 <= took[0] <= 3.0, took
    connections = psutil.Process(served.pid).net_connections()
    assert not [c for c in connections if c.status == psutil.CONN_ESTABLISHED]
    assert served.get()[0] == 200


def test_timeout_ends_a_stuck_worker(tmp_path: Path, procs: ProcessReaper) -> None:
    served = Served(tmp_path, procs, "wsgiapp:application", "-w", "1", "-t", "1")
    (worker,) = served.children()
    start = time.monotonic()
    got = raw(served.port, b"GET /slow?5 HTTP/1.1\r\nHost: t\r\n\r\n", timeout=10)
    assert got == b"" and time.monotonic() - start < 4, "the connection closes at --timeout"
    wait_until(lambda: served.children() and worker not in served.children(), 10, "a new worker")
    assert served.get()[0] == 200
    assert "WORKER TIMEOUT" in served.log_text()


# -- a Flask application ----------------------------------------------------------------------


def test_flask_application(tmp_path: Path, procs: ProcessReaper) -> None:
    pytest.importorskip("flask")
    served = Served(
        tmp_path, procs, "flaskapp:create_app('Bonjour')", "-w", "2", "--preload", source=FLASK_APP
    )
    status, body, headers = served.get("/hello/you")
    assert status == 200 and body.startswith("Bonjour, you! (")
    assert headers["Content-Type"].startswith("text/html")
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    conn.request(
        "POST", "/json", body=b'{"a": [1, 2]}', headers={"Content-Type": "application/json"}
    )
    response = conn.getresponse()
    assert response.status == 200
    import json

    got = json.loads(response.read())
    assert got["got"] == {"a": [1, 2]} and got["pid"] in served.children()
    conn.close()
    assert served.get("/nowhere")[0] == 404


# -- refusals ---------------------------------------------------------------------------------


def _serve_cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kernelish", "serve", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp,
    )


def test_a_bad_option_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "wsgiapp.py").write_text(APP)
    done = _serve_cli(tmp_path, "wsgiapp:application", "-w", "0")
    assert done.returncode == 2 and "--workers" in done.stderr, done.stderr
    done = _serve_cli(tmp_path, "wsgiapp:application", "--max-requests-jitter", "5")
    assert done.returncode == 2 and "--max-requests-jitter: " in done.stderr, done.stderr
    done = _serve_cli(tmp_path, "nosuchmodule:app")
    assert done.returncode == 3 and "no module named 'nosuchmodule'" in done.stderr
    with pytest.raises(ServeConfigError, match="bind"):
        serve("wsgiapp:application", bind="127.0.0.1:http")
    with pytest.raises(ServeConfigError, match="worker_count"):
        serve("wsgiapp:application", worker_count=3)


def test_an_application_that_fails_to_import_stops_the_server(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('cannot start')\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kernelish", "serve", "broken:app", "-b", "127.0.0.1:0", "-w", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,
    )
    procs.add(proc.pid)
    procs.add_session(proc.pid)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 3, err
    assert "cannot start" in err and "failed to boot" in err


def test_import_app_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "forms_app.py").write_text(
        "def application(e, s): return []\n"
        "class Holder:\n    app = application\n"
        "def make(x, y=2):\n    def app(e, s): return [str(x + y).encode()]\n    return app\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = import_app("forms_app")
    assert module.__name__ == "application"
    assert import_app("forms_app:Holder.app").__name__ == "application"
    assert import_app("forms_app:make(1, y=5)")({}, None) == [b"6"]
    for bad in ("forms_app:nothing", "forms_app:make(open('x'))", "forms_app:1+", "-x:app"):
        with pytest.raises(ImportError):
            import_app(bad)


# -- the adapter's PEP 3333 corners, in-process -----------------------------------------------


def _run_apps(apps: dict[str, Any]) -> dict[str, Any]:
    """Each application behind its own path of one in-process server; the
    first reply each gave to a GET of its path."""
    routes = [(f"^{path}$", WSGIHandler(app)) for path, app in apps.items()]
    server = ServerHTTP(Address="127.0.0.1", Handlers=routes, AccessLog=False)
    replies = {}
    for path in apps:
        peer = HTTPPeer(server.port)
        peer.send(f"GET {path}?q=1 HTTP/1.1\r\nHost: h:1\r\nConnection: close\r\n\r\n".encode())
        replies[path] = peer.wait_replies(1)[0]
        peer.sock.close()
    poe_kernel.post(server, "shutdown")
    poe_kernel.run()
    return replies


def test_adapter_write_callable_and_exc_info() -> None:
    def writer(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written, ")
        return [b"returned"]

    def recovers(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("X-First", "1")])
        try:
            raise ValueError("oops")
        except ValueError:
            start_response("503 Busy", [("X-Then", "2")], sys.exc_info())
        return [b"sorry"]

    replies = _run_apps({"/writer": writer, "/recovers": recovers})
    reply = replies["/writer"]
    assert reply.status == 200 and reply.body == b"written, returned"
    reply = replies["/recovers"]
    assert reply.status == 503 and reply.body == b"sorry"
    assert reply.header("x-then") == "2" and reply.header("x-first") is None


def test_adapter_refuses_pep_3333_violations() -> None:
    def twice(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b""]

    def never(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return [b"no status"]

    def text(environ: dict[str, Any], start_response: Any) -> list[str]:
        start_response("200 OK", [])
        return ["str"]

    def hop(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Transfer-Encoding", "gzip"), ("Keep-Alive", "1")])
        return [b"hop"]

    seen: dict[str, Any] = {}

    def environ_of(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        start_response("204 No Content", [])
        return []

    apps = {"/twice": twice, "/never": never, "/text": text, "/hop": hop, "/p": environ_of}
    replies = _run_apps(apps)
    assert replies["/twice"].status == 500 and replies["/text"].status == 500
    assert replies["/never"].status == 500
    reply = replies["/hop"]
    assert reply.status == 200 and reply.body == b"hop" and "keep-alive" not in reply.headers
    assert replies["/p"].status == 204
    assert seen["PATH_INFO"] == "/p" and seen["QUERY_STRING"] == "q=1"
    assert seen["HTTP_HOST"] == "h:1" and seen["wsgi.url_scheme"] == "http"
    assert seen["SERVER_PORT"] and seen["REMOTE_ADDR"] == "127.0.0.1"


# -- the example ------------------------------------------------------------------------------


def test_wsgi_app_example(tmp_path: Path, procs: ProcessReaper) -> None:
    pidfile, logfile = tmp_path / "wsgi.pid", tmp_path / "wsgi.log"
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "0", str(logfile), str(pidfile), "--max-requests", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("PORT="), done.stdout
    port = int(first.split("=", 1)[1])
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="pid"))
    procs.add_session(os.getsid(pid))
    procs.add(pid)

    def get(path: str, body: bytes | None = None) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("POST" if body is not None else "GET", path, body=body)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    status, page = get("/?name=<you>")
    assert status == 200 and "Hello, &lt;you&gt;!" in page
    assert get("/count?n=3") == (200, "1\n2\n3\n")
    assert get("/echo", b"said=hi") == (200, "You said: hi\n")
    pids = {int(get("/pid")[1]) for _ in range(6)}
    assert len(pids) >= 3 and pid not in pids, "max-requests 2: workers are replaced"
    status, auto = get("/server-status?auto")
    assert status == 200 and f"ParentPid: {pid}" in auto
    assert re.search(r'"GET /count\?n=3 HTTP/1\.1" 200 6', logfile.read_text())
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: gone(pid), 10, "the daemon to stop")


# -- systemd: socket activation and notify ----------------------------------------------------


def test_socket_activation_and_notify(tmp_path: Path, procs: ProcessReaper) -> None:
    """Started as systemd starts a socket-activated ``Type=notify`` unit: the
    inherited socket (fd 3, ``LISTEN_FDS``) is served instead of ``--bind``,
    and ``READY=1`` comes on ``NOTIFY_SOCKET`` once the workers run."""
    (tmp_path / "wsgiapp.py").write_text(APP)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(10)
    launcher = (
        "import os, sys; os.dup2(int(sys.argv[1]), 3); "
        "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid())); "
        "os.execv(sys.executable, [sys.executable, '-m', 'kernelish', *sys.argv[2:]])"
    )
    args = [
        "serve",
        "wsgiapp:application",
        "-b",
        "127.0.0.1:1",
        "-w",
        "2",
        "--chdir",
        str(tmp_path),
    ]
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    with listener, notify:
        proc = subprocess.Popen(
            [sys.executable, "-c", launcher, str(listener.fileno()), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            pass_fds=(listener.fileno(),),
            env=env,
            start_new_session=True,
        )
        procs.add(proc.pid)
        procs.add_session(proc.pid)
        Served.running.append(_Bare(proc))
        assert _readline(proc, 15) == f"PORT={port}"
        messages = b""
        while b"READY=1" not in messages:
            messages += notify.recv(4096)
        assert f"MAINPID={proc.pid}".encode() in messages
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/activated")
    response = conn.getresponse()
    assert response.status == 200 and response.read().decode().endswith("GET /activated ")
    conn.close()


class _Bare:
    """A process the teardown stops like a Served one."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
