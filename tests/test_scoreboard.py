"""The Daemon's scoreboard (POE::Component::Daemon::Scoreboard) across real forked processes."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator

import pytest

from kernelish.components.daemon._scoreboard import SLOT_SIZE, Scoreboard, SlotInfo, SlotState


class Children:
    """Fork children that run a body and ``os._exit`` (0 = the body passed), and reap them.

    Used as a context manager: whatever happens in the test, every child still running on
    the way out is killed and every child is reaped, so none outlives its test.
    """

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.codes: dict[int, int | None] = {}

    def spawn(self, body: Callable[[], None]) -> int:
        """Run ``body`` in a forked child; return its pid."""
        pid = os.fork()
        if pid == 0:  # child: never return into pytest
            code = 1
            try:
                body()
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        self.codes[pid] = None
        return pid

    def poll(self, pid: int) -> int | None:
        """The child's exit code if it has exited (reaping it), else None."""
        if self.codes[pid] is None:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                self.codes[pid] = os.waitstatus_to_exitcode(status)
        return self.codes[pid]

    def join(self, pid: int) -> int:
        """Wait (bounded) for the child to exit; return its exit code."""
        deadline = time.monotonic() + self.timeout
        while (code := self.poll(pid)) is None:
            if time.monotonic() > deadline:
                pytest.fail(f"child {pid} did not exit within {self.timeout}s")
            time.sleep(0.005)
        return code

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        for pid, code in self.codes.items():
            if code is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll in a child (no pytest helpers there) until ``predicate`` holds, else raise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.001)


@pytest.fixture
def board() -> Iterator[Scoreboard]:
    sb = Scoreboard(6)
    yield sb
    sb.close()


# -- single-process semantics -----------------------------------------------------------


def test_new_board_is_empty(board: Scoreboard) -> None:
    assert len(board) == 6
    assert board.read_all() == [" "] * 6
    assert all(info.pid == 0 and info.requests == 0 for info in board.slots())


def test_for_children_adds_five_spare_slots() -> None:
    with Scoreboard.for_children(3) as sb:
        assert len(sb) == 8
    assert sb.closed


def test_add_takes_lowest_free_slot_and_drop_frees_it(board: Scoreboard) -> None:
    assert board.add() == 0
    assert board.add("FORK") == 1
    assert board.add("wait") == 2
    assert board.read_all()[:3] == ["F", "F", "w"]
    board.write(1, "fork", pid=4242)
    board.drop(1)
    assert board.read(1) == "."
    assert board.slot(1).pid == 0  # drop clears the pid
    assert board.add() == 1  # a dropped slot is reused first, being the lowest free one
    assert board.read(1) == "F"


def test_add_resets_pid_and_request_count(board: Scoreboard) -> None:
    slot = board.add()
    assert slot is not None
    board.write(slot, "req", pid=99)
    board.drop(slot)
    assert board.add() == slot
    info = board.slot(slot)
    assert (info.status, info.pid, info.requests) == ("F", 0, 0)


def test_full_board_returns_none() -> None:
    with Scoreboard(3) as sb:
        assert [sb.add() for _ in range(3)] == [0, 1, 2]
        assert sb.add() is None
        sb.write(1, "exit")
        assert sb.add() is None  # exiting is not free until the parent drops it
        sb.drop(1)
        assert sb.add() == 1


@pytest.mark.parametrize(
    ("word", "char"),
    [
        ("wait", "w"),
        ("req", "r"),
        ("long", "l"),
        ("FORK", "F"),
        ("fork", "f"),
        ("exit", "e"),
        ("e", "e"),
        ("done", "w"),
        (".", "."),
        (SlotState.LONG, "l"),
    ],
)
def test_write_stores_first_character(board: Scoreboard, word: str | SlotState, char: str) -> None:
    board.write(0, word)
    assert board.read(0) == char


@pytest.mark.parametrize("bad", ["", "x", "dance", "Wait", " ", "quit"])
def test_write_refuses_unknown_or_empty_status(board: Scoreboard, bad: str) -> None:
    with pytest.raises(ValueError, match=r"status|empty"):
        board.write(0, bad)
    assert board.read(0) == " "


def test_add_refuses_free_states(board: Scoreboard) -> None:
    with pytest.raises(ValueError, match="free state"):
        board.add(".")


@pytest.mark.parametrize("slot", [-1, 6, 100])
def test_unknown_slot_is_refused(board: Scoreboard, slot: int) -> None:
    with pytest.raises(IndexError, match="isn't a known slot"):
        board.read(slot)
    with pytest.raises(IndexError):
        board.write(slot, "wait")
    with pytest.raises(IndexError):
        board.drop(slot)


def test_write_records_pid_and_time(board: Scoreboard) -> None:
    before = time.time()
    board.write(2, "fork", pid=1234)
    board.write(2, "wait")  # no pid: the recorded one stays
    info = board.slot(2)
    assert info == SlotInfo(2, "w", 1234, 0, info.changed)
    assert before <= info.changed <= time.time()


def test_request_counting(board: Scoreboard) -> None:
    slot = board.add()
    assert slot is not None
    for status in ["fork", "wait", "req", "long", "done"]:  # r -> l is the same request
        board.write(slot, status)
    assert board.slot(slot).requests == 1
    for status in ["long", "wait", "req", "req", "wait"]:  # l from w counts; r -> r does not
        board.write(slot, status)
    assert board.slot(slot).requests == 3
    board.write(slot, "exit")
    board.drop(slot)
    assert board.slot(slot).requests == 3  # drop keeps the count for post-mortems; add resets


def test_post_forking_child_counts_its_one_request(board: Scoreboard) -> None:
    slot = board.add("FORK")
    assert slot is not None
    board.write(slot, "fork")
    board.write(slot, "req")  # become_child in a post-forking server
    board.write(slot, "wait")
    assert board.slot(slot).requests == 1


def test_status_text_follows_perl_layout() -> None:
    with Scoreboard(5) as sb:
        sb.add()
        sb.write(0, "wait", pid=321)
        sb.add()
        sb.drop(1)
        text = sb.status()
    assert text.splitlines() == [
        "POE::Component::Daemon::Scoreboard",
        "    5 slots in the scoreboard",
        "    Slots [w.   ]",
        "    4 slots free",
        "    0: w pid=321 requests=0",
        "    1: . pid=0 requests=0",
    ]


def test_summary_counts_every_state(board: Scoreboard) -> None:
    board.add()
    board.add("wait")
    board.add("wait")
    board.write(2, "req")
    summary = board.summary()
    assert summary == {" ": 3, ".": 0, "F": 1, "f": 0, "w": 1, "r": 1, "l": 0, "e": 0}
    assert sum(summary.values()) == len(board)


def test_states_are_read_as_slot_states(board: Scoreboard) -> None:
    board.add()
    board.add("wait")
    board.drop(0)
    assert board.state(1) is SlotState.WAIT
    assert board.states() == [SlotState(c) for c in board.read_all()]
    assert board.states()[:3] == [SlotState.DROPPED, SlotState.WAIT, SlotState.EMPTY]
    with pytest.raises(IndexError):
        board.state(len(board))


def test_slot_state_lifecycle() -> None:
    assert SlotState.EMPTY.allows(SlotState.FORK)
    assert SlotState.FORK.allows(SlotState.CHILD)
    assert SlotState.REQ.allows(SlotState.LONG)
    assert SlotState.WAIT.allows(SlotState.EXIT)
    assert SlotState.LONG.allows(SlotState.DROPPED)
    assert not SlotState.LONG.allows(SlotState.REQ)
    assert not SlotState.EMPTY.allows(SlotState.WAIT)
    assert not SlotState.EMPTY.allows(SlotState.DROPPED)
    assert not SlotState.WAIT.allows(SlotState.EMPTY)
    assert SlotState.WAIT.allows(SlotState.WAIT)  # 'done' twice
    assert SlotState.FORK.allows(SlotState.REQ)  # a post-forked child, on its request
    assert not SlotState.REQ.allows(SlotState.REQ)  # a request without its 'done'


def test_record_is_small() -> None:
    assert SLOT_SIZE == 32


def test_closed_board_refuses_use() -> None:
    sb = Scoreboard(2)
    sb.close()
    assert sb.closed
    assert "closed" in repr(sb)
    with pytest.raises(ValueError):
        sb.read(0)


# -- across processes -------------------------------------------------------------------


def test_children_writes_are_seen_by_parent(board: Scoreboard) -> None:
    def child(slot: int) -> Callable[[], None]:
        def body() -> None:
            board.write(slot, "fork", pid=os.getpid())
            board.write(slot, "wait")
            for _ in range(slot + 1):  # slot n serves n + 1 requests
                board.write(slot, "req")
                board.write(slot, "done")
            board.write(slot, "exit")

        return body

    with Children() as kids:
        pids = {}
        for _ in range(4):
            slot = board.add("FORK")
            assert slot is not None
            pids[slot] = kids.spawn(child(slot))
        assert all(kids.join(pid) == 0 for pid in pids.values())
    assert board.read_all() == ["e", "e", "e", "e", " ", " "]
    for slot, pid in pids.items():
        info = board.slot(slot)
        assert (info.pid, info.requests) == (pid, slot + 1)
    for slot in pids:
        board.drop(slot)  # the parent's sig_CHLD
    assert board.read_all()[:4] == ["."] * 4


def test_parent_write_after_fork_is_seen_by_child(board: Scoreboard) -> None:
    def body() -> None:
        _wait_for(lambda: board.read(3) == "l")

    with Children() as kids:
        pid = kids.spawn(body)
        board.write(3, "long")
        assert kids.join(pid) == 0


def test_one_childs_write_is_seen_by_another_child(board: Scoreboard) -> None:
    def reader() -> None:
        _wait_for(lambda: board.read(1) == "w")
        assert board.slot(1).pid == 777
        board.write(2, "req")  # answer back to the parent

    def writer() -> None:
        board.write(1, "wait", pid=777)

    with Children() as kids:
        r = kids.spawn(reader)  # started first, so it really watches the write happen
        w = kids.spawn(writer)
        assert kids.join(w) == 0
        assert kids.join(r) == 0
    assert board.read_all()[1:3] == ["w", "r"]
    assert board.slot(2).requests == 1


def test_snapshots_are_never_torn(board: Scoreboard) -> None:
    # The writer keeps pid == request count on every write, so a snapshot taken mid-write
    # (new pid, old count) would show them differing.
    rounds = 3000

    def writer() -> None:
        for n in range(1, rounds + 1):
            board.write(0, "req", pid=n)
            board.write(0, "wait", pid=n)

    with Children() as kids:
        pid = kids.spawn(writer)
        seen = 0
        while True:
            code = kids.poll(pid)
            info = board.slot(0)
            if info.status != " ":
                assert info.pid == info.requests, info
                seen += 1
            if code is not None:
                break
        assert code == 0
    assert board.slot(0).requests == rounds
    assert seen > 0


def test_mapping_is_anonymous_nothing_on_disk(board: Scoreboard) -> None:
    view = ctypes.c_char.from_buffer(board._mm)
    address = ctypes.addressof(view)
    del view  # release the buffer export so the board can be closed
    with open("/proc/self/maps") as maps:
        lines = [line.split() for line in maps]
    [entry] = [f for f in lines if int(f[0].split("-")[0], 16) == address]
    perms, path = entry[1], " ".join(entry[5:])
    assert perms.endswith("s")  # shared, so forked children see the same pages
    # Linux names shared anonymous memory "/dev/zero (deleted)": an unlinked shmem inode,
    # not a file anyone can open.  No other path may appear.
    assert path in ("", "/dev/zero (deleted)") or path.startswith("[anon"), path
    assert len(board) * SLOT_SIZE <= int(entry[0].split("-")[1], 16) - address


def test_move_writes_what_write_writes() -> None:
    """A child's ``move`` (its own slot, the current state known) leaves the
    same record as ``write``: the status, the request count (one more on
    entering 'r' or 'l' from any other state), the pid untouched."""
    states = [s for s in SlotState if s is not SlotState.EMPTY]
    with Scoreboard(2) as a, Scoreboard(2) as b:
        for board in (a, b):
            board.write(1, SlotState.FORK, pid=4242)
        for old in states:
            for new in states:
                a.write(1, old)
                b.write(1, old)
                a.write(1, new)
                b.move(1, b.state(1), new)
                got, want = b.slots()[1], a.slots()[1]
                assert (got.status, got.pid, got.requests) == (
                    want.status,
                    want.pid,
                    want.requests,
                ), (old, new)
                assert abs(got.changed - want.changed) < 5
