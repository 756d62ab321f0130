"""Process faults: the parent dies hard, children ignore TERM, fork fails,
a handler raises."""

from __future__ import annotations

import os
import signal
import socket
import time
from functools import partial
from pathlib import Path

from .._support import LineClient, ProcessReaper, gone, wait_until
from ._harness import figures, start_app


def port_is_free(port: int) -> bool:
    """Whether we can bind and listen on ``port`` (SO_REUSEADDR, as a
    restarted server would: TIME_WAIT entries do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
    return True


def test_parent_killed_hard_children_exit_and_port_is_freed(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    app = start_app(
        tmp_path, procs, "--start-children", "3", "--min-spare", "3", "--requests", "50",
        min_waiting=3,
    )  # fmt: skip
    busy = LineClient(app.port)  # one child is inside a request when the parent dies
    busy_pid = int(busy.ask("PID"))
    kids = app.children()
    assert busy_pid in kids and len(kids) >= 3
    assert not port_is_free(app.port)
    os.kill(app.pid, signal.SIGKILL)
    start = time.monotonic()
    wait_until(lambda: all(gone(k) for k in kids), 5, "every child to exit by itself")
    children_gone = time.monotonic() - start
    wait_until(lambda: port_is_free(app.port), 5, "the listening port to be free")
    port_free = time.monotonic() - start
    assert busy.closed_by_server()
    busy.close()
    figures(
        "parent_killed", children=len(kids), children_gone_s=children_gone, port_free_s=port_free
    )
    assert children_gone < 1.0
    assert port_free < 2.0
    assert not app.processes()


def test_children_ignoring_term_are_killed_after_shutdown_timeout(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    app = start_app(
        tmp_path, procs, "--start-children", "2", "--min-spare", "2", "--ignore-term",
        "--shutdown-timeout", "0.5", min_waiting=2,
    )  # fmt: skip
    kids = app.children()
    os.kill(app.pid, signal.SIGTERM)
    start = time.monotonic()
    wait_until(lambda: not app.processes(), 5, "every daemon process to exit")
    elapsed = time.monotonic() - start
    exits = app.status()["exits"]
    killed = {pid for pid, status, _t in exits if os.WIFSIGNALED(status)}
    log = app.log_text()
    figures("term_escalation", children=len(kids), all_gone_s=elapsed, sigkilled=len(killed))
    assert 0.5 <= elapsed < 3.0
    assert set(kids) <= killed, "the stuck children got KILL"
    assert all(os.WTERMSIG(s) == signal.SIGKILL for p, s, _t in exits if p in kids)
    assert "ignored TERM for 0.5s; sending KILL" in log


def test_fork_eagain_is_retried_keeps_serving_and_recovers(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    fail = tmp_path / "fork-fails"
    app = start_app(
        tmp_path, procs, "--start-children", "3", "--min-spare", "3", "--max-children", "8",
        "--requests", "1", "--fork-fail-file", str(fail), "--verbose", min_waiting=3,
    )  # fmt: skip
    fail.write_text("EAGAIN")
    # Use up two children (requests=1): they exit, their replacements fail.
    for _ in range(2):
        client = LineClient(app.port)
        assert client.ask("PING") == "PONG"
        client.finish()
    wait_until(lambda: app.status()["fork_failures"] >= 2, 5, "forks to fail")
    wait_until(lambda: len(app.children()) == 1, 5, "the pool to shrink to one child")
    # The daemon keeps serving with the child it has.
    client = LineClient(app.port)
    assert client.ask("PING") == "PONG"
    client.finish()
    wait_until(lambda: not app.children(), 5, "the last child to go")
    failures_empty = app.fresh_status()["fork_failures"]
    time.sleep(1.5)  # a while with no child at all: retries keep failing
    assert not gone(app.pid)
    failures_before = app.fresh_status()["fork_failures"]
    assert failures_before > failures_empty, "the 1 s retry kept trying while forks failed"
    time_fixed = time.monotonic()
    fail.unlink()
    wait_until(lambda: app.waiting() >= 3, 5, "the full pool again")
    recovered = time.monotonic() - time_fixed
    snap = app.fresh_status()
    log = app.log_text()
    figures(
        "fork_eagain",
        fork_failures=failures_before,
        recovered_s=recovered,
        children_after=len(snap["children"]),
    )
    assert recovered < 2.5, "retried once a second"
    assert "Recoverable forking problem" in log
    assert "Traceback" not in log
    assert len(snap["children"]) <= 4, "no burst of forks when forking works again"
    os.kill(app.pid, signal.SIGTERM)
    wait_until(lambda: not app.processes(), 10, "every daemon process to exit")


def test_permanent_fork_failure_shuts_down_cleanly(tmp_path: Path, procs: ProcessReaper) -> None:
    fail = tmp_path / "fork-fails"
    app = start_app(
        tmp_path, procs, "--start-children", "2", "--min-spare", "2", "--requests", "1",
        "--fork-fail-file", str(fail), min_waiting=2,
    )  # fmt: skip
    fail.write_text("EPERM")
    client = LineClient(app.port)  # its child exits after this; the replacement fails
    assert client.ask("PING") == "PONG"
    client.finish()
    start = time.monotonic()
    wait_until(lambda: not app.processes(), 10, "the daemon to shut down")
    elapsed = time.monotonic() - start
    log = app.log_text()
    figures("fork_eperm", shutdown_s=elapsed, can_t_fork_lines=log.count("Can't fork"))
    assert log.count("Can't fork: Operation not permitted; shutting down") == 1
    assert "Traceback" not in log


def test_handler_exception_becomes_die_and_child_is_replaced(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    app = start_app(
        tmp_path, procs, "--start-children", "2", "--min-spare", "2", "--requests", "50",
        min_waiting=2,
    )  # fmt: skip
    victims = []
    for _ in range(3):
        client = LineClient(app.port)
        pid = int(client.ask("PID"))
        client.send("RAISE")
        assert client.closed_by_server(), "the failed child ends"
        client.close()
        victims.append(pid)
        wait_until(partial(gone, pid), 5, "the failed child to exit")
    start = time.monotonic()
    wait_until(lambda: app.waiting() >= 2, 5, "replacements for the failed children")
    replaced = time.monotonic() - start
    exits = {pid: status for pid, status, _t in app.fresh_status()["exits"]}
    assert all(os.WIFEXITED(exits[p]) and os.WEXITSTATUS(exits[p]) == 1 for p in victims)
    # The parent is unharmed and serves on.
    assert not gone(app.pid)
    client = LineClient(app.port)
    assert client.ask("PING") == "PONG"
    client.finish()
    log = app.log_text()
    assert log.count("RuntimeError: RAISE in") == 3
    figures("unhandled_die", failed_children=3, replaced_s=replaced, parent_alive=True)


def test_handled_die_keeps_the_child_serving(tmp_path: Path, procs: ProcessReaper) -> None:
    app = start_app(
        tmp_path, procs, "--start-children", "1", "--min-spare", "1", "--requests", "50",
        "--handle-die", min_waiting=1,
    )  # fmt: skip
    client = LineClient(app.port)
    pid = int(client.ask("PID"))
    assert client.ask("RAISE") == f"ERR RuntimeError: RAISE in {pid}"
    assert client.ask("PING") == "PONG", "the child lives on"
    client.finish()
    assert f"{pid}: DIE handled: RuntimeError: RAISE in {pid}" in app.log_text()
