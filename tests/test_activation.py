"""Socket activation: a daemon started with an inherited listening socket
(LISTEN_FDS as systemd sets it) serves on it without binding."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

from ._support import ProcessReaper

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def _ask(port: int, line: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(line.encode() + b"\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = conn.recv(1024)
            assert chunk, "connection closed early"
            data += chunk
        return data.split(b"\r\n", 1)[0].decode()


def _launch(
    script: list[str], sockets: list[socket.socket], names: str | None, reaper: ProcessReaper
) -> subprocess.CompletedProcess[str]:
    """Start ``script`` as systemd would: fds 3.. are the sockets, and
    LISTEN_PID names the started process (set by a tiny exec shim)."""
    env = dict(os.environ, LISTEN_FDS=str(len(sockets)))
    if names is not None:
        env["LISTEN_FDNAMES"] = names
    shim = textwrap.dedent(
        """
        import os, sys
        for i, fd in enumerate(map(int, sys.argv[1].split(','))):
            os.dup2(fd, 3 + i)
        os.environ['LISTEN_PID'] = str(os.getpid())
        os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
        """
    )
    fds = [s.fileno() for s in sockets]
    return subprocess.run(
        [sys.executable, "-c", shim, ",".join(map(str, fds)), *script],
        env=env,
        pass_fds=fds,
        capture_output=True,
        text=True,
        timeout=20,
        cwd=EXAMPLES,
    )


def test_detached_daemon_serves_on_the_inherited_socket(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    listener = _listener()
    port = listener.getsockname()[1]
    try:
        # The example asks for port 0; it must adopt fd 3 instead of binding.
        proc = _launch(["preforking.py", "0", str(tmp_path / "d.log")], [listener], None, procs)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[0] == f"PORT={port}", "the inherited socket, not a new one"
        child = int(_ask(port, "PID"))
        parent = psutil.Process(child).ppid()
        procs.add_session(os.getsid(parent))
        procs.add(parent)
        assert _ask(port, "PING") == "PONG"
    finally:
        listener.close()


def test_sockets_are_adopted_by_name(tmp_path: Path, procs: ProcessReaper) -> None:
    first, second = _listener(), _listener()
    script = tmp_path / "named.py"
    script.write_text(
        textwrap.dedent(
            """
        from kernelish import Session, poe_kernel
        from kernelish.wheels import SocketFactory

        def _start(_):
            heap = _.heap
            heap['b'] = SocketFactory(ListenFdName='beta', SuccessEvent='x', FailureEvent='y')
            heap['a'] = SocketFactory(BindPort=0, SuccessEvent='x', FailureEvent='y')
            print(heap['b'].getsockname()[1], heap['a'].getsockname()[1], flush=True)
            heap.clear()

        Session.create(inline_states={'_start': _start, 'x': print, 'y': print})
        poe_kernel.run()
        """
        )
    )
    try:
        proc = _launch([str(script)], [first, second], "alpha:beta", procs)
        assert proc.returncode == 0, proc.stderr
        got_beta, got_next = map(int, proc.stdout.split())
        assert got_beta == second.getsockname()[1]
        assert got_next == first.getsockname()[1]
    finally:
        first.close()
        second.close()


def test_no_adoption_without_matching_listen_pid() -> None:
    from kernelish import _activation

    saved = _activation._inherited
    os.environ.update(LISTEN_PID="1", LISTEN_FDS="1")
    try:
        _activation._inherited = None
        assert _activation.inherited_sockets() == []
        assert os.environ["LISTEN_FDS"] == "1", "another process's variables are left alone"
    finally:
        os.environ.pop("LISTEN_PID")
        os.environ.pop("LISTEN_FDS")
        _activation._inherited = saved


def test_the_variables_are_consumed_when_they_name_us() -> None:
    from kernelish import _activation

    saved = _activation._inherited
    os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="0", LISTEN_FDNAMES="")
    try:
        _activation._inherited = None
        assert _activation.inherited_sockets() == []
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            assert key not in os.environ, f"{key} must not reach children"
    finally:
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(key, None)
        _activation._inherited = saved
