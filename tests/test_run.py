"""Run (POE::Wheel::Run): programs and callables in real child processes,
their stdio as events, their exit status through sig_child.

The expected traces are POE 1.370's (checked with Debian's libpoe-perl):
each output stream ends with ``ErrorEvent('read', 0, '', id, 'STDOUT')``
(or 'STDERR'), CloseEvent follows once both ended, and a program that
cannot be executed is reported by the child itself on its stderr, with the
errno as exit status.
"""

from __future__ import annotations

import errno
import gc
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from kernelish import ARG0, HEAP, KERNEL, HandlerArgs, Session, poe_kernel
from kernelish.filters import Reference
from kernelish.wheels import Run

from ._run_support import exit_code, run_child, start_child
from ._support import ProcessReaper, open_fds, zombies_of
from ._wheels import run_until

PY = sys.executable

#: One entry per os.fork() of this process (an at-fork hook, registered once).
_FORKS: list[int] = []
os.register_at_fork(before=lambda: _FORKS.append(1))


@pytest.fixture(autouse=True)
def no_child_left(procs: ProcessReaper) -> Iterator[None]:
    """Whatever a test leaves running (a failed one's sleeper) is ended."""
    yield
    for kid in psutil.Process().children():
        procs.add(kid.pid)


def wheel_events(child: Any) -> list[tuple[str, tuple[Any, ...]]]:
    return [(name, args) for name, args in child.trace if name != "chld"]


# -- programs ---------------------------------------------------------------------


def test_an_argv_program_gives_records_then_both_ends_then_close() -> None:
    child = run_child(
        Program=["sh", "-c", 'echo one; echo two; echo oops >&2; exit "$0"'],
        ProgramArgs=["3"],
    )
    wid = child.wheel_id
    assert child.records("stdout") == ["one", "two"]
    assert child.records("stderr") == ["oops"]
    trace = wheel_events(child)
    ends = [args for name, args in trace if name == "error"]
    assert sorted(ends) == [("read", 0, "", wid, "STDERR"), ("read", 0, "", wid, "STDOUT")]
    # CloseEvent once, after everything else the wheel says.
    assert trace[-1] == ("close", (wid,))
    assert child.events().count("close") == 1
    assert exit_code(child.status) == 3
    assert child.trace[-1][0] == "chld" or child.trace.index(("close", (wid,))) >= 0


def test_a_shell_string_gets_program_args_appended() -> None:
    child = run_child(Program="echo $((40 + 2))", ProgramArgs=["and", "more"])
    assert child.records("stdout") == ["42 and more"]
    assert exit_code(child.status) == 0


def test_a_missing_program_is_reported_by_the_child_as_poe_does() -> None:
    child = run_child(Program=["/nonexistent/prog", "a"], ProgramArgs=["b"])
    assert child.records("stderr") == [
        f"can't exec (/nonexistent/prog a) in child pid {child.pid}: No such file or directory"
    ]
    assert exit_code(child.status) == errno.ENOENT
    assert child.events().count("close") == 1


def test_a_program_that_is_not_executable_exits_with_eacces(tmp_path: Any) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    child = run_child(Program=[str(script)])
    [line] = child.records("stderr")
    assert line.endswith("Permission denied")
    assert exit_code(child.status) == errno.EACCES


def test_argv_programs_start_without_a_python_fork() -> None:
    """The parent is not forked: no at-fork hook runs (subprocess's vfork,
    posix_spawn for a pty); a callable does fork."""
    before = len(_FORKS)
    for conduit in ("pipe", "socketpair", "pty", "pty-pipe"):
        run_child(Program=["true"], Conduit=conduit, StderrEvent=...)
    assert len(_FORKS) == before
    run_child(Program=lambda: None)
    assert len(_FORKS) == before + 1


def test_subprocess_never_reaps_the_kernels_child() -> None:
    """Popen's own reaping (``__del__``, ``_cleanup`` on the next Popen)
    must not take the exit status sig_child is owed."""
    seen: list[int] = []

    def start(_: HandlerArgs) -> None:
        wheel = Run(Program=["sh", "-c", "exit 7"], NoStdin=True)
        _[HEAP]["pid"] = wheel.PID
        _[KERNEL].sig_child(wheel.PID, "chld")
        # Let it exit, then start another Popen: subprocess._cleanup runs.
        deadline = time.monotonic() + 5
        while not _zombie(wheel.PID):
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.005)
        subprocess.run(["true"], check=True)

    def chld(_: HandlerArgs) -> None:
        seen.append(_.args[2])

    Session.create(inline_states={"_start": start, "chld": chld})
    run_until(lambda: seen, 5, "the exit status")
    assert os.WEXITSTATUS(seen[0]) == 7


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


# -- callables ----------------------------------------------------------------------


def _greet(name: str, punct: str) -> str:
    print(f"hello {name}{punct}")
    print(f"pid {os.getpid()}", file=sys.stderr)
    return "ignored"


def _fail() -> None:
    raise ValueError("worker broke")


def _exit5() -> None:
    sys.exit(5)


def test_a_callable_runs_in_the_child_with_program_args() -> None:
    child = run_child(Program=_greet, ProgramArgs=["world", "!"])
    assert child.records("stdout") == ["hello world!"]
    assert child.records("stderr") == [f"pid {child.pid}"]
    assert child.pid != os.getpid()
    assert exit_code(child.status) == 0  # its return value is not the status


def test_a_callable_that_raises_leaves_a_traceback_and_status_1() -> None:
    child = run_child(Program=_fail)
    err = child.records("stderr")
    assert err[0] == "Traceback (most recent call last):"
    assert err[-1] == "ValueError: worker broke"
    assert not any("_spawn.py" in line for line in err), "the traceback starts at the callable"
    assert exit_code(child.status) == 1


def test_sys_exit_in_a_callable_is_its_status() -> None:
    child = run_child(Program=_exit5)
    assert exit_code(child.status) == 5


def test_kill_reaches_a_callable_child_of_a_kernel_that_watches_term() -> None:
    """The parent's kernel watches TERM (its Python handler only wakes the
    loop); the child gets default handlers (POE resets %SIG), so TERM ends a
    child that never runs the kernel."""

    def watch_term(_: HandlerArgs) -> None:
        _[KERNEL].sig("TERM", "term")
        _[KERNEL].alias_set("term watcher")

    Session.create(inline_states={"_start": watch_term, "term": lambda _: None})
    assert callable(signal.getsignal(signal.SIGTERM))

    def sleeper() -> None:
        print("ready")
        time.sleep(30)

    def ready(_: HandlerArgs) -> None:
        assert _[HEAP]["wheel"].kill() == 1

    child = start_child(Program=sleeper, handlers={"stdout": ready})
    run_until(lambda: child.done, 10, "the child to die of TERM")
    assert child.status is not None and os.WTERMSIG(child.status) == signal.SIGTERM


def _own_kernel(parent_id: str) -> None:
    """A child that stops the copied kernel and runs one of its own (POE's
    POD: "Running POE::Kernel in the Child")."""
    poe_kernel.stop()
    got: list[str] = []

    def start(_: HandlerArgs) -> None:
        _[KERNEL].yield_("hello", "from the child's kernel")

    Session.create(inline_states={"_start": start, "hello": lambda _: got.append(_[ARG0])})
    poe_kernel.run()
    print(got[0])
    print("new kernel id" if parent_id != poe_kernel.ID else "same kernel id")


def test_a_callable_child_can_stop_the_copy_and_run_its_own_kernel() -> None:
    child = run_child(Program=_own_kernel, ProgramArgs=[poe_kernel.ID])
    assert child.records("stdout") == ["from the child's kernel", "new kernel id"], child.records(
        "stderr"
    )
    assert exit_code(child.status) == 0


def test_close_on_call_leaves_the_callable_only_its_stdio(tmp_path: Any) -> None:
    r, w = os.pipe()  # something of the parent's a child must not keep

    def fds() -> None:
        for name in sorted(os.listdir("/proc/self/fd"), key=int):
            target = os.readlink(f"/proc/self/fd/{name}")
            kind = "devnull" if target == "/dev/null" else target.split(":")[0].split()[0]
            print(name, kind)

    try:
        closed = run_child(Program=fds, CloseOnCall=True)
        open_ = run_child(Program=fds)
    finally:
        os.close(r)
        os.close(w)
    kinds = dict(line.split() for line in closed.records("stdout"))
    assert kinds["1"] == "pipe"
    assert all(kind == "devnull" for fd, kind in kinds.items() if int(fd) > 2), kinds
    plain = dict(line.split() for line in open_.records("stdout"))
    assert any(kind == "pipe" for fd, kind in plain.items() if int(fd) > 2)


# -- stdin --------------------------------------------------------------------------


def test_put_writes_and_stdin_event_comes_after_the_handler() -> None:
    order: list[str] = []

    def on_start(_: HandlerArgs, wheel: Run) -> None:
        assert wheel.put("alpha", "beta") == 0
        order.append("put returned")
        _[KERNEL].yield_("later")

    def flushed(_: HandlerArgs) -> None:
        order.append("stdin")
        _[HEAP]["wheel"].shutdown_stdin()

    child = start_child(
        Program=["cat"],
        on_start=on_start,
        handlers={"stdin": flushed, "later": lambda _: order.append("later")},
    )
    run_until(lambda: child.done, 10, "cat to finish")
    assert child.records("stdout") == ["alpha", "beta"]
    assert order[:3] == ["put returned", "stdin", "later"]
    assert child.records("stdin") == [child.wheel_id]


def test_shutdown_stdin_writes_what_is_queued_first() -> None:
    """POE drops what is still queued; kernelish sends it, then closes."""
    block = "x" * 1023

    def on_start(_: HandlerArgs, wheel: Run) -> None:
        wheel.put(*[block] * 2048)  # 2 MiB: more than a pipe holds
        assert wheel.get_driver_out_octets() > 0
        wheel.shutdown_stdin()
        with pytest.raises(BrokenPipeError):
            wheel.put("too late")

    child = run_child(Program=["wc", "-c"], on_start=on_start)
    assert child.records("stdout") == [str(2048 * 1024)]


def test_put_without_stdin_raises() -> None:
    raised: list[str] = []

    def on_start(_: HandlerArgs, wheel: Run) -> None:
        try:
            wheel.put("x")
        except BrokenPipeError as exc:
            raised.append(str(exc))

    run_child(Program=["true"], NoStdin=True, on_start=on_start)
    assert raised and "no open STDIN" in raised[0]


def test_a_child_that_never_reads_stdin_is_bounded() -> None:
    """StdinMaxBuffer: the queue never passes it; the refused put() is
    reported as ErrorEvent('write', ENOBUFS, ..., 'STDIN')."""
    bound = 256 * 1024
    refused: list[int] = []

    def on_start(_: HandlerArgs, wheel: Run) -> None:
        chunk = "y" * 65535
        for _i in range(64):
            if wheel.put(chunk):
                refused.append(wheel.get_driver_out_octets())
                break
        wheel.kill()

    child = run_child(
        Program=["sleep", "30"], StdinMaxBuffer=bound, on_start=on_start, StdoutEvent="stdout"
    )
    assert refused and refused[0] <= bound
    assert ("write", errno.ENOBUFS, os.strerror(errno.ENOBUFS), child.wheel_id, "STDIN") in (
        child.errors()
    )
    assert os.WTERMSIG(child.status or 0) == signal.SIGTERM


def test_writing_to_a_child_that_exited_is_a_write_error_then_discarded() -> None:
    later: list[Any] = []

    def on_close(_: HandlerArgs) -> None:
        wheel = _[HEAP]["wheel"]
        wheel.put("x" * 100_000)  # the child is gone: EPIPE, reported by the write handler
        _[KERNEL].delay("again", 0.05)

    def again(_: HandlerArgs) -> None:
        later.append(_[HEAP]["wheel"].put("more"))  # discarded, no exception
        del _[HEAP]["wheel"]

    child = start_child(
        Program=["true"],
        drop_on_close=False,
        handlers={"close": on_close, "again": again},
    )
    run_until(lambda: later and child.status is not None, 10, "the write error")
    assert ("write", errno.EPIPE, os.strerror(errno.EPIPE), child.wheel_id, "STDIN") in (
        child.errors()
    )
    assert later == [0]


# -- output -------------------------------------------------------------------------


def _half_frame(frame_class: Any) -> None:
    out = os.fdopen(1, "wb", closefd=False)
    whole = frame_class().put([{"answer": 42}])[0]
    out.write(whole + whole[: len(whole) // 2])
    out.flush()
    os._exit(3)


def test_a_worker_that_dies_mid_frame() -> None:
    reference = Reference
    child = run_child(
        Program=_half_frame, ProgramArgs=[reference], StdioFilter=reference(), StderrEvent=...
    )
    assert child.records("stdout") == [{"answer": 42}]
    assert ("read", 0, "", child.wheel_id, "STDOUT") in child.errors()
    assert child.events().count("close") == 1
    assert exit_code(child.status) == 3


def test_a_record_over_the_filters_limit_ends_the_stream() -> None:
    from kernelish.filters import Line

    child = run_child(
        Program=[PY, "-c", "print('short'); print('z' * 5000); print('never')"],
        StdoutFilter=Line(Literal="\n", MaxLength=100),
    )
    assert child.records("stdout") == ["short"]
    assert ("read", errno.EMSGSIZE, "record too long", child.wheel_id, "STDOUT") in child.errors()
    assert child.events().count("close") == 1


def test_pause_and_resume_stdout() -> None:
    """While paused nothing is read; the child blocks on a full pipe."""
    count = [0]
    paused_at: list[int] = []

    def on_out(_: HandlerArgs) -> None:
        count[0] += 1
        if count[0] == 1:
            _[HEAP]["wheel"].pause_stdout()
            paused_at.append(count[0])
            _[KERNEL].delay("resume", 0.2)

    def resume(_: HandlerArgs) -> None:
        paused_at.append(count[0])
        _[HEAP]["wheel"].resume_stdout()

    child = start_child(
        Program=["sh", "-c", "echo first; sleep 0.05; seq 1 20000"],
        handlers={"stdout": on_out, "resume": resume},
    )
    run_until(lambda: child.done, 10, "the child to end")
    assert paused_at == [1, 1], "no StdoutEvent while paused"
    assert count[0] == 20001


def test_set_stdout_filter_mid_chunk_hands_the_rest_to_the_new_filter() -> None:
    from kernelish.filters import Stream

    def on_out(_: HandlerArgs) -> None:
        if _[ARG0] == "switch":
            _[HEAP]["wheel"].set_stdout_filter(Stream())

    child = run_child(Program=["printf", "a\\nswitch\\nraw bytes\\n"], handlers={"stdout": on_out})
    assert child.records("stdout") == ["a", "switch", b"raw bytes\n"]


def test_event_renames_and_none_stops_reading() -> None:
    def on_start(_: HandlerArgs, wheel: Run) -> None:
        wheel.event(StdoutEvent="renamed", close_event="closed")

    child = start_child(
        Program=["echo", "hi"],
        on_start=on_start,
        handlers={
            "renamed": lambda _: _[HEAP].setdefault("got", _[ARG0]),
            "closed": lambda _: _[HEAP].pop("wheel"),
        },
    )
    run_until(lambda: child.status is not None and not child.session.heap.get("wheel"), 10)
    assert child.session.heap["got"] == "hi"


def test_event_refuses_unknown_names_and_streams_it_does_not_read() -> None:
    from kernelish._params import ParameterError

    refused: list[str] = []

    def on_start(_: HandlerArgs, wheel: Run) -> None:
        for bad in ({"InputEvent": "x"}, {"StderrEvent": "x"}):
            try:
                wheel.event(**bad)
            except ParameterError as exc:
                refused.append(str(exc))

    run_child(Program=["true"], StderrEvent=None, on_start=on_start)
    assert refused == [
        "Run.event: unknown event parameter 'InputEvent'",
        "Run.event: StderrEvent: the wheel has no stderr to read (made without it)",
    ]


# -- conduits -----------------------------------------------------------------------


def test_pty_child_leads_a_session_with_the_pty_as_its_terminal() -> None:
    child = run_child(
        Program=["sh", "-c", 'tty; cat /proc/$$/stat; stty size; echo "err" >&2'],
        Conduit="pty",
        StderrEvent=...,
        Winsize=[24, 80],
    )
    out = child.records("stdout")
    assert out[0].startswith("/dev/pts/")
    assert _stat(out[1])["session"] == child.pid, "setsid: the child leads its own session"
    assert out[2] == "24 80"
    assert out[3] == "err", "a pty carries stderr too"
    # The end of a pty is end of file, not EIO.
    assert child.errors() == [("read", 0, "", child.wheel_id, "STDOUT")]


def test_pty_is_raw_no_echo() -> None:
    def on_start(_: HandlerArgs, wheel: Run) -> None:
        wheel.put("hello")

    def on_out(_: HandlerArgs) -> None:
        _[HEAP]["wheel"].kill()

    child = run_child(
        Program=[PY, "-c", "import sys; print('got', sys.stdin.readline().strip())"],
        Conduit="pty",
        StderrEvent=...,
        on_start=on_start,
    )
    assert child.records("stdout") == ["got hello"], "no echo of what was put"


def test_pty_pipe_keeps_stderr_apart() -> None:
    child = run_child(
        Program=["sh", "-c", "echo out; echo err >&2"],
        Conduit="pty-pipe",
    )
    assert child.records("stdout") == ["out"]
    assert child.records("stderr") == ["err"]


def test_a_pty_the_child_closes_early() -> None:
    """The child closes its terminal and lives on: end of file, CloseEvent,
    then the wheel kills it -- no hang."""

    def on_close(_: HandlerArgs) -> None:
        _[HEAP]["wheel"].kill()

    child = start_child(
        Program=["sh", "-c", "echo bye; exec 0<&- 1>&- 2>&-; sleep 30"],
        Conduit="pty",
        StderrEvent=...,
        drop_on_close=False,
        handlers={"close": on_close},
    )
    run_until(lambda: child.done, 10, "end of file and the child's end")
    assert child.records("stdout") == ["bye"]
    assert os.WTERMSIG(child.status or 0) == signal.SIGTERM


def test_socketpair_conduit_half_closes_on_shutdown_stdin() -> None:
    def on_start(_: HandlerArgs, wheel: Run) -> None:
        wheel.put("one", "two")
        wheel.shutdown_stdin()

    child = run_child(
        Program=["sh", "-c", "readlink /proc/$$/fd/0 | cut -d: -f1; cat"],
        Conduit="socketpair",
        on_start=on_start,
    )
    assert child.records("stdout") == ["socket", "one", "two"]


# -- process attributes -------------------------------------------------------------


def _stat(line: str) -> dict[str, int]:
    """The fields of a /proc/PID/stat line these tests read."""
    fields = line.rsplit(")", 1)[1].split()
    return {"pgrp": int(fields[2]), "session": int(fields[3]), "nice": int(fields[16])}


def test_process_group_session_and_priority() -> None:
    script = "cat /proc/$$/stat"
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    own = run_child(Program=["sh", "-c", script], Priority=3)
    assert _stat(own.records("stdout")[0]) == {
        "pgrp": own.pid,
        "session": os.getsid(0),
        "nice": mine + 3,
    }
    same = run_child(Program=["sh", "-c", script], NoSetPgrp=True)
    assert _stat(same.records("stdout")[0])["pgrp"] == os.getpgid(0)

    def niceness() -> None:
        print(os.getpriority(os.PRIO_PROCESS, 0), os.getpgid(0) == os.getpid())

    code = run_child(Program=niceness, Priority=2)
    assert code.records("stdout") == [f"{mine + 2} True"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change user")
def test_user_and_group_as_root() -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    child = run_child(Program=["sh", "-c", "id -u; id -g; id -G"], User="nobody")
    uid, gid, groups = child.records("stdout")
    assert (int(uid), int(gid)) == (nobody.pw_uid, nobody.pw_gid)
    assert "0" not in groups.split(), "root's supplementary groups are dropped"

    def ids() -> None:
        print(os.getuid(), os.geteuid(), os.getgid(), 0 in os.getgroups())

    code = run_child(Program=ids, User=nobody.pw_uid, Group=nobody.pw_gid)
    assert code.records("stdout") == [f"{nobody.pw_uid} {nobody.pw_uid} {nobody.pw_gid} False"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may change user")
def test_user_without_privilege_is_refused() -> None:
    with pytest.raises(PermissionError, match="User 0 needs root"):
        run_child(Program=["true"], User=0)


def test_redirects(tmp_path: Any) -> None:
    out, err, both = tmp_path / "out", tmp_path / "err", tmp_path / "both"
    child = start_child(
        Program=["sh", "-c", "echo o; echo e >&2"],
        RedirectStdout=str(out),
        RedirectStderr=err,
        StdoutEvent=None,
        StderrEvent=None,
    )
    run_until(lambda: child.status is not None, 10, "the child")
    assert (out.read_text(), err.read_text()) == ("o\n", "e\n")
    child = start_child(
        Program=["sh", "-c", "echo o; echo e >&2"],
        RedirectOutput=both,
        StdoutEvent=None,
        StderrEvent=None,
    )
    run_until(lambda: child.status is not None, 10, "the child")
    assert sorted(both.read_text().split()) == ["e", "o"]


def test_a_redirect_through_a_planted_symlink_is_refused(tmp_path: Any) -> None:
    from kernelish._params import ParameterError

    target = tmp_path / "precious"
    target.write_text("keep me")
    link = tmp_path / "log"
    link.symlink_to(target)
    with pytest.raises(ParameterError, match="RedirectStdout") as info:
        run_child(Program=["echo", "x"], RedirectStdout=link, StdoutEvent=None)
    assert info.value.params == ("RedirectStdout",)
    assert target.read_text() == "keep me"


# -- parameters -----------------------------------------------------------------------


BAD_PARAMS = [
    ({}, "missing required parameter 'Program'", ("Program",)),
    ({"Program": []}, "Program must not be an empty argv list", ("Program",)),
    ({"Program": 42}, "Program must be an argv list", ("Program",)),
    ({"Program": ["x"], "ProgramArgs": "a b"}, "ProgramArgs must be a list", ("ProgramArgs",)),
    ({"Program": ["x"], "Conduit": "tube"}, "Conduit must be 'pipe'", ("Conduit",)),
    ({"Program": ["x"], "Conduit": "inet"}, "'inet' is not supported", ("Conduit",)),
    ({"Program": ["x"], "Winsize": [24, 80]}, "Winsize needs a pty", ()),
    ({"Program": ["x"], "Conduit": "pty", "Winsize": [1, 2, 3]}, "Winsize must be", ("Winsize",)),
    ({"Program": ["x"], "Conduit": "pty", "StderrEvent": "e"}, "use Conduit 'pty-pipe'", ()),
    ({"Program": ["x"], "Conduit": "pty", "RedirectStdout": "/dev/null"}, "with a pty", ()),
    (
        {"Program": ["x"], "RedirectStdout": "/dev/null", "StdoutEvent": "o"},
        "RedirectStdout and StdoutEvent are mutually exclusive",
        (),
    ),
    (
        {"Program": ["x"], "RedirectOutput": "/dev/null", "StderrEvent": "o"},
        "RedirectOutput and StderrEvent are mutually exclusive",
        (),
    ),
    ({"Program": ["x"], "User": "no-such-user-here"}, "User names no user", ("User",)),
    ({"Program": ["x"], "StdinMaxBuffer": 0}, "StdinMaxBuffer", ("StdinMaxBuffer",)),
    ({"Program": ["x"], "Bogus": 1}, "unknown parameter 'Bogus'", ("Bogus",)),
]


@pytest.mark.parametrize(("params", "message", "names"), BAD_PARAMS)
def test_bad_parameters_are_refused_by_name(
    params: dict[str, Any], message: str, names: tuple[str, ...]
) -> None:
    from kernelish._params import ParameterError

    gc.collect()  # what earlier tests left to the collector
    before = open_fds()
    with pytest.raises(ParameterError) as info:
        Run(**params)
    assert message in str(info.value)
    assert info.value.params == names
    assert open_fds() == before


def test_snake_case_parameters() -> None:
    child = run_child(program=["echo", "snake"], program_args=["case"], stdout_event="stdout")
    assert child.records("stdout") == ["snake case"]


# -- resources ------------------------------------------------------------------------


def test_no_fd_leak_and_no_zombie_across_conduits_and_failures() -> None:
    def run_all() -> None:
        for conduit in ("pipe", "socketpair", "pty", "pty-pipe"):
            run_child(Program=["echo", conduit], Conduit=conduit, StderrEvent=...)
        run_child(Program=["/nonexistent"])
        run_child(Program=_greet, ProgramArgs=["x", "y"])
        run_child(Program=["cat"], on_start=lambda _, w: w.put("line") or w.shutdown_stdin())

    run_all()  # warm up: imports, the kernel's wakeup pipe
    # With the collector off, only reference counting frees the wheels:
    # they must not sit in cycles.
    gc.collect()
    gc.disable()
    try:
        before = open_fds()
        run_all()
        assert open_fds() == before
    finally:
        gc.enable()
    assert zombies_of(os.getpid()) == []


def test_dropping_the_wheel_closes_the_pipes_so_the_child_ends() -> None:
    def on_out(_: HandlerArgs) -> None:
        del _[HEAP]["wheel"]  # the child's stdin closes: cat sees EOF

    gc.collect()
    before = open_fds()
    child = start_child(
        Program=["sh", "-c", "echo up; cat"],
        handlers={"stdout": on_out},
    )
    run_until(lambda: child.status is not None, 10, "cat to exit")
    assert exit_code(child.status) == 0
    assert open_fds() == before


def test_kill_after_the_child_was_reaped_signals_nobody() -> None:
    child = start_child(Program=["sleep", "30"], drop_on_close=False)
    run_until(lambda: child.wheel is not None, 5, "the wheel")
    wheel = child.wheel
    assert wheel is not None
    assert wheel.kill("KILL") == 1
    run_until(lambda: child.done, 10, "the child's end")
    assert os.WTERMSIG(child.status or 0) == signal.SIGKILL
    # Reaped now: through its pidfd, kill() cannot reach a process that
    # reused the pid.
    assert wheel.kill() == 0
    assert wheel.kill(9) == 0
    with pytest.raises(ValueError, match="unknown signal"):
        wheel.kill("NOPE")
    del wheel
    assert child.session is not None
    child.session.heap.pop("wheel")


def test_a_stream_without_its_event_is_inherited_and_not_counted() -> None:
    """As POE's code: no StdoutEvent, no stdout conduit (the child writes to
    the parent's stdout) and CloseEvent counts only stderr; the wheel still
    has its stdout filter, as POE's does."""
    from kernelish.filters import Line

    filters: list[Any] = []

    def on_start(_: HandlerArgs, wheel: Run) -> None:
        filters.append(wheel.get_stdout_filter())

    child = run_child(
        Program=["sh", "-c", 'out=$(readlink /proc/$$/fd/1); echo "$out" >&2; echo err >&2'],
        StdoutEvent=None,
        on_start=on_start,
    )
    inherited, err = child.records("stderr")
    assert inherited == os.readlink("/proc/self/fd/1")
    assert err == "err"
    assert child.errors() == [("read", 0, "", child.wheel_id, "STDERR")]
    assert child.events().count("close") == 1
    assert isinstance(filters[0], Line)
