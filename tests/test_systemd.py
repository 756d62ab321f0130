"""systemd notifications (sd_notify) from a real detached Daemon, to a fake
NOTIFY_SOCKET bound by the test (a path, and one in the abstract namespace)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from kernelish.components.daemon import DaemonConfig
from kernelish.components.daemon._systemd import Notifier, notify_address

from ._appsupport import NotifySocket, children_of, launch, notify_socket, start_daemon
from ._support import ProcessReaper, wait_until

# -- the Notifier, in-process ----------------------------------------------------------


def test_from_environ_consumes_the_variables() -> None:
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}
    notifier = Notifier.from_environ(None, env)
    assert notifier is not None and env == {}
    assert notifier.address == "@x"
    assert notifier.watchdog_interval == pytest.approx(0.1)
    notifier.close()


def test_from_environ_without_socket_or_disabled() -> None:
    assert Notifier.from_environ(None, {}) is None
    assert Notifier.from_environ(True, {}) is None  # nobody to notify: a warning
    env = {"NOTIFY_SOCKET": "/run/x"}
    assert Notifier.from_environ(False, env) is None
    assert env == {}, "consumed even when disabled"


def test_watchdog_for_another_pid_is_ignored() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}
    notifier = Notifier.from_environ(None, env)
    assert notifier is not None and notifier.watchdog_interval is None
    notifier.close()


def test_abstract_address() -> None:
    assert notify_address("@name") == b"\0name"
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"


def test_status_only_when_changed_and_closed_is_silent(tmp_path: Path) -> None:
    with notify_socket(str(tmp_path / "n")) as fake:
        notifier = Notifier(fake.env)
        assert notifier.status("a")
        assert not notifier.status("a")
        assert notifier.status("b")
        assert [fake.receive(1)[1] for _ in range(2)] == [{"STATUS": "a"}, {"STATUS": "b"}]
        notifier.close()
        assert not notifier.ready()


def test_sending_to_nobody_does_not_raise(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    assert not notifier.notify("READY=1")
    notifier.close()


def test_notify_is_a_config_field() -> None:
    assert DaemonConfig().notify is None
    assert DaemonConfig(notify=1).notify is True


# -- a real detached daemon ---------------------------------------------------------------


def _ready(fake: NotifySocket, pidfile: Path) -> int:
    sender, fields = fake.wait_for("READY")
    pid = int(pidfile.read_text())
    assert fields["READY"] == "1"
    assert int(fields["MAINPID"]) == pid == sender, "sent by the detached daemon, about itself"
    assert os.getsid(pid) == pid, "after detaching (setsid)"
    assert "2 children" in fields["STATUS"]
    return pid


def test_ready_status_stopping_from_detached_daemon(tmp_path: Path, procs: ProcessReaper) -> None:
    with notify_socket(str(tmp_path / "notify")) as fake:
        pidfile = tmp_path / "d.pid"
        start_daemon(tmp_path, procs, env={"NOTIFY_SOCKET": fake.env})
        # The launcher returned only once READY=1 had been sent: it is waiting.
        pid = _ready(fake, pidfile)
        # A child goes: the pool shrinks and grows back, and systemd hears of it.
        os.kill(children_of(pid)[0], signal.SIGKILL)
        _, fields = fake.wait_for("STATUS")
        assert "1 children" in fields["STATUS"]
        os.kill(pid, signal.SIGTERM)
        sender, _ = fake.wait_for("STOPPING")
        assert sender == pid
        wait_until(lambda: not pidfile.exists(), 5, "the pidfile to go")
        senders = {s for s, _ in fake.messages}
        assert senders == {pid}, "children never notify"
        assert sum("READY" in f for _, f in fake.messages) == 1


def test_ready_over_abstract_socket(tmp_path: Path, procs: ProcessReaper) -> None:
    with notify_socket(f"@kernelish-test-{uuid.uuid4().hex}") as fake:
        start_daemon(tmp_path, procs, env={"NOTIFY_SOCKET": fake.env})
        pid = _ready(fake, tmp_path / "d.pid")
        os.kill(pid, signal.SIGTERM)
        fake.wait_for("STOPPING")


def test_reloading_around_hup(tmp_path: Path, procs: ProcessReaper) -> None:
    with notify_socket(str(tmp_path / "notify")) as fake:
        start_daemon(tmp_path, procs, env={"NOTIFY_SOCKET": fake.env})
        pid = _ready(fake, tmp_path / "d.pid")
        os.kill(pid, signal.SIGHUP)
        _, fields = fake.wait_for("RELOADING")
        assert int(fields["MONOTONIC_USEC"]) > 0
        sender, fields = fake.wait_for("READY")
        assert sender == pid


def test_watchdog_pings(tmp_path: Path, procs: ProcessReaper) -> None:
    with notify_socket(str(tmp_path / "notify")) as fake:
        # WATCHDOG_PID names the process systemd started, as systemd does.
        proc = launch(
            tmp_path / "d.log",
            "--pidfile",
            str(tmp_path / "d.pid"),
            env={"NOTIFY_SOCKET": fake.env, "WATCHDOG_USEC": "200000"},
            shell_prefix="WATCHDOG_PID=$$; export WATCHDOG_PID;",
        )
        assert proc.returncode == 0, proc.stderr
        pid = int((tmp_path / "d.pid").read_text())
        procs.add_session(pid)
        for _ in range(3):
            sender, fields = fake.wait_for("WATCHDOG", 2)
            assert fields == {"WATCHDOG": "1"} and sender == pid


def test_not_detached_daemon_is_its_own_main_pid(tmp_path: Path, procs: ProcessReaper) -> None:
    with notify_socket(str(tmp_path / "notify")) as fake:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")}
        env["NOTIFY_SOCKET"] = fake.env
        import sys

        from ._appsupport import APP

        proc = subprocess.Popen(
            [sys.executable, str(APP), str(tmp_path / "d.log"), "--no-detach", "--mode", "plain"],
            env=env,
        )
        procs.add(proc.pid)
        sender, fields = fake.wait_for("READY")
        assert int(fields["MAINPID"]) == proc.pid == sender
        assert fields["STATUS"] == "Daemon server running"
        proc.send_signal(signal.SIGTERM)
        fake.wait_for("STOPPING")
        assert proc.wait(5) == 0


def test_refused_before_detaching_says_nothing(tmp_path: Path) -> None:
    # A logfile in a directory that does not exist: refused before detaching;
    # the launcher reports the error itself and systemd hears nothing.
    with notify_socket(str(tmp_path / "notify")) as fake:
        proc = launch(tmp_path / "nodir" / "d.log", env={"NOTIFY_SOCKET": fake.env})
        assert proc.returncode != 0
        with pytest.raises(socket.timeout):
            fake.receive(0.05)
