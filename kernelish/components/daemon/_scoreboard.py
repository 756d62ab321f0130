"""The child-process scoreboard: a port of POE::Component::Daemon::Scoreboard.

The Perl original keeps one status character per child in a SysV shared memory segment
(``shmget(IPC_PRIVATE, ...)``) so that the parent sees what every forked child is doing.
kernelish keeps the same one-character protocol but puts it in an *anonymous* shared
``mmap``: every child created by ``os.fork()`` inherits the mapping, nothing is named on
disk or in the SysV namespace, and the memory goes away with the last process using it.

Beside the status character each slot also records the child's pid, how many requests it
has served and when its status last changed; the Perl daemon kept those in parent-only
hashes, which a child (or a debugger peeking from another child) could not see.
"""

from __future__ import annotations

import enum
import mmap
import struct
import time
from dataclasses import dataclass
from types import TracebackType

__all__ = ["SLOT_SIZE", "Scoreboard", "SlotInfo", "SlotState"]


class SlotState(enum.Enum):
    """The status a scoreboard slot can hold (the SCOREBOARD section of POE::Component::Daemon).

    Each value is the single character stored in shared memory.  The lifecycle of a slot,
    as the Daemon drives it, is::

        ' ' EMPTY   --add-->   'F' FORK      parent reserved the slot and is about to fork
        '.' DROPPED --add-->   'F' FORK      a reaped child's slot is reused
        'F' FORK    -------->  'f' CHILD     the forked pre-forking child has started
        'F' FORK    -------->  'r' REQ       the forked post-forking child has started on the
                                              request it was forked for
        'F' FORK    -------->  '.' DROPPED   the fork failed; the parent frees the slot
        'f' CHILD   -------->  'w' WAIT      ready for its first request
        'f' CHILD   -------->  'r' REQ       on its first request at once
        'w' WAIT    -------->  'r' REQ | 'l' LONG
        'r' REQ     -------->  'l' LONG      the same request turned out to be long
        'r' REQ | 'l' LONG --> 'w' WAIT      request done ('done' is written as 'wait')
        'w' WAIT    -------->  'w' WAIT      'done' again: nothing changes
        any but ' ' -------->  'e' EXIT      the child is shutting down
        any but ' ' -------->  '.' DROPPED   the parent reaped the child (SIGCHLD)

    ``EMPTY`` is only ever the initial state; nothing writes it back.  :meth:`Scoreboard.write`
    does not enforce the lifecycle (neither did the Perl module); :meth:`allows` says whether
    a move is in it -- the Daemon's children check their own moves with it under Python's
    development mode (``python -X dev``), where a request without its ``'done'`` (``r -> r``)
    is reported.
    """

    EMPTY = " "
    DROPPED = "."
    FORK = "F"
    CHILD = "f"
    WAIT = "w"
    REQ = "r"
    LONG = "l"
    EXIT = "e"

    @property
    def label(self) -> str:
        """The state in a word or two, as ``kernelish status`` prints it."""
        return _LABELS[self]

    def allows(self, new: SlotState) -> bool:
        """Whether the documented lifecycle lets a slot go from this state to ``new``."""
        if new in (SlotState.EXIT, SlotState.DROPPED):
            return self is not SlotState.EMPTY
        return new in _TRANSITIONS[self]


_LABELS = {
    SlotState.EMPTY: "empty",
    SlotState.DROPPED: "gone",
    SlotState.FORK: "forking",
    SlotState.CHILD: "started",
    SlotState.WAIT: "waiting",
    SlotState.REQ: "request",
    SlotState.LONG: "long req",
    SlotState.EXIT: "exiting",
}

_TRANSITIONS: dict[SlotState, frozenset[SlotState]] = {
    SlotState.EMPTY: frozenset({SlotState.FORK}),
    SlotState.DROPPED: frozenset({SlotState.FORK}),
    SlotState.FORK: frozenset({SlotState.CHILD, SlotState.REQ}),
    SlotState.CHILD: frozenset({SlotState.WAIT, SlotState.REQ}),
    SlotState.WAIT: frozenset({SlotState.WAIT, SlotState.REQ, SlotState.LONG}),
    SlotState.REQ: frozenset({SlotState.LONG, SlotState.WAIT}),
    SlotState.LONG: frozenset({SlotState.WAIT}),
    SlotState.EXIT: frozenset(),
}

# The states in which a child is busy with a request; entering one of them from any other
# state is what counts as "one more request served".
_BUSY = frozenset({SlotState.REQ.value, SlotState.LONG.value})
_FREE = frozenset({SlotState.EMPTY.value, SlotState.DROPPED.value})
_VALID = frozenset(s.value for s in SlotState)
# The stored byte back to its state: a dict lookup, where SlotState(char) is an Enum call.
_STATE_OF = {ord(s.value): s for s in SlotState}
_BYTE_OF = {s: ord(s.value) for s in SlotState}
_BUSY_STATES = frozenset({SlotState.REQ, SlotState.LONG})

# One 32-byte record per slot, native byte order with standard sizes so the layout does not
# depend on the C compiler:
#   0  status  1 byte   the Perl module's one character
#   1  -       3 bytes  padding, keeps ``seq`` 4-aligned
#   4  seq     uint32   seqlock counter: odd while a writer is mid-update
#   8  pid     int64    0 when unknown
#  16  reqs    uint64   requests served in this slot since it was added
#  24  changed double   time.time() of the last write
_RECORD = struct.Struct("=c3xIqQd")
SLOT_SIZE = _RECORD.size
"""Bytes of shared memory per slot."""
_SEQ = struct.Struct("=I")
_SEQ_OFF = 4
_PID = struct.Struct("=q")
_PID_OFF = 8
_REQS = struct.Struct("=Q")
_REQS_OFF = 16
_CHANGED = struct.Struct("=d")
_CHANGED_OFF = 24
# How long a reader busy-spins, then waits in total, for a consistent snapshot of a slot: a
# writer killed between the two seqlock bumps would otherwise leave the slot "busy" forever.
_SPIN_TRIES = 100
_SNAPSHOT_PATIENCE = 0.05


@dataclass(frozen=True)
class SlotInfo:
    """A consistent snapshot of one scoreboard slot (kernelish extra; Perl had only the char)."""

    index: int
    status: str
    pid: int
    requests: int
    changed: float


def _to_char(status: str | SlotState) -> str:
    """Map a status word (``'wait'``, ``'FORK'``...) or character to the stored character.

    Like Perl's ``substr($value, 0, 1)`` the first character is what gets stored, except that
    ``'done'`` -- which POE::Component::Daemon's update_status turns into ``'wait'`` -- is
    stored as ``'w'`` rather than a meaningless ``'d'``.
    """
    if isinstance(status, SlotState):
        char: str = status._value_  # what .value returns, without its descriptor's call
        return char
    if status == "done":
        return SlotState.WAIT.value
    char = status[:1]
    if char not in _VALID:
        raise ValueError(f"unknown scoreboard status {status!r}")
    return char


class Scoreboard:
    """Shared per-child status board; port of POE::Component::Daemon::Scoreboard.

    ``Scoreboard(n_slots)`` maps ``n_slots * SLOT_SIZE`` bytes of anonymous shared memory,
    all slots empty (``' '``).  Create it in the parent *before* forking; parent and children
    then read and write the same bytes.

    Only one process should allocate (:meth:`add`) and free (:meth:`drop`) slots -- the
    Daemon's parent, as in Perl, where the free list lived in the parent's memory.  Each
    child writes only its own slot.  A slot's status character is a single byte, so a reader
    never sees it torn; the other fields are protected by a per-slot seqlock so that
    :meth:`slots` returns consistent snapshots.
    """

    def __init__(self, n_slots: int) -> None:
        if n_slots < 1:
            raise ValueError(f"a scoreboard needs at least one slot, not {n_slots}")
        self._n = n_slots
        # MAP_SHARED so that writes after fork() are seen by every process; anonymous so that
        # nothing lives on disk and nothing needs cleaning up after a crash.
        self._mm = mmap.mmap(
            -1,
            n_slots * SLOT_SIZE,
            flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS,
            prot=mmap.PROT_READ | mmap.PROT_WRITE,
        )
        now = time.time()
        for slot in range(n_slots):
            _RECORD.pack_into(self._mm, slot * SLOT_SIZE, b" ", 0, 0, 0, now)

    @classmethod
    def for_children(cls, max_children: int) -> Scoreboard:
        """A board sized as POE::Component::Daemon's ``_start`` does: ``max_children + 5``."""
        return cls(max_children + 5)

    def __len__(self) -> int:
        """Number of slots (the Perl object's ``{N}``)."""
        return self._n

    # -- Perl API -----------------------------------------------------------------------

    def add(self, status: str | SlotState = "FORK") -> int | None:
        """Reserve a free slot and write ``status`` into it; Perl ``add($value)``.

        Returns the lowest slot that is empty or dropped, or ``None`` when the board is full
        (Perl returned ``undef``, and the Daemon warned "NO FREE SLOT!").  The slot's pid and
        request counter are reset.  Unlike Perl, which kept its free list in the allocating
        process, the free slots are found in shared memory, so the board is the only truth.
        """
        char = _to_char(status)
        if char in _FREE:
            raise ValueError(f"cannot add a slot in the free state {char!r}")
        for slot, current in enumerate(self._mm[0 : self._n * SLOT_SIZE : SLOT_SIZE]):
            if chr(current) in _FREE:
                self._store(slot, char, pid=0, requests=0)
                return slot
        return None

    def drop(self, slot: int) -> None:
        """Free ``slot`` (status ``'.'``, pid cleared) for the next :meth:`add`; Perl ``drop``."""
        self._check(slot)
        self._store(slot, SlotState.DROPPED.value, pid=0, requests=None)

    def read(self, slot: int) -> str:
        """The status character of ``slot``; Perl ``read($slot)``.  Raises IndexError."""
        self._check(slot)
        return chr(self._mm[slot * SLOT_SIZE])

    def write(self, slot: int, status: str | SlotState, pid: int | None = None) -> None:
        """Set the status of ``slot``; Perl ``write($slot, $value)``.

        ``status`` is a word or a character and its first character is stored (``'wait'`` ->
        ``'w'``, ``'req'`` -> ``'r'``, ``'long'`` -> ``'l'``, ``'FORK'`` -> ``'F'``,
        ``'fork'`` -> ``'f'``, ``'exit'`` -> ``'e'``), with ``'done'`` stored as ``'w'``.
        Unknown statuses raise ValueError; writing the empty state ``' '`` is refused.

        Request counting: moving *into* ``'r'`` or ``'l'`` from any state other than those
        two adds one to the slot's request count.  So ``w -> r -> l -> w`` is one request (the
        Daemon's update_status marks a request that turns out long as ``r -> l``), and
        ``w -> l -> w -> r`` is two.  If ``pid`` is given it is recorded too.
        """
        self._check(slot)
        char = _to_char(status)
        if char == SlotState.EMPTY.value:
            raise ValueError("a slot cannot be written back to the empty state ' '")
        base = slot * SLOT_SIZE
        requests: int | None = None
        if char in _BUSY and chr(self._mm[base]) not in _BUSY:
            requests = _REQS.unpack_from(self._mm, base + _REQS_OFF)[0] + 1
        self._store(slot, char, pid=pid, requests=requests)

    def move(self, slot: int, current: SlotState, new: SlotState) -> None:
        """:meth:`write` ``new`` over ``current`` -- the state the slot holds,
        as the caller just read it -- for a child's own slot (kernelish).

        The same record as ``write(slot, new)``, written the same way (under
        the seqlock, the status byte last), without what a child's
        ``update_status`` need not pay for on every request: the slot's
        bounds are the child's own, checked when it got them, and the state
        is a :class:`SlotState` already.
        """
        mm = self._mm
        base = slot * SLOT_SIZE
        seq = _SEQ.unpack_from(mm, base + _SEQ_OFF)[0] | 1
        _SEQ.pack_into(mm, base + _SEQ_OFF, seq & 0xFFFFFFFF)
        if new in _BUSY_STATES and current not in _BUSY_STATES:
            count = _REQS.unpack_from(mm, base + _REQS_OFF)[0] + 1
            _REQS.pack_into(mm, base + _REQS_OFF, count)
        _CHANGED.pack_into(mm, base + _CHANGED_OFF, time.time())
        mm[base] = _BYTE_OF[new]
        _SEQ.pack_into(mm, base + _SEQ_OFF, (seq + 1) & 0xFFFFFFFF)

    def state(self, slot: int) -> SlotState:
        """The state of ``slot`` (kernelish; :meth:`read` gives its character)."""
        self._check(slot)
        return _STATE_OF[self._mm[slot * SLOT_SIZE]]

    def states(self) -> list[SlotState]:
        """Every slot's state, in slot order (kernelish; :meth:`read_all` gives characters)."""
        return [_STATE_OF[b] for b in self._mm[0 : self._n * SLOT_SIZE : SLOT_SIZE]]

    def read_all(self) -> list[str]:
        """Every slot's status character, in slot order; Perl ``read_all``."""
        # One slice copies the whole board at once, then the status bytes are picked out.
        raw = self._mm[0 : self._n * SLOT_SIZE : SLOT_SIZE]
        return [chr(b) for b in raw]

    def status(self) -> str:
        """Human readable dump of the board; Perl ``status``.

        Same layout as the Perl module (lines joined with a newline and four spaces)::

            POE::Component::Daemon::Scoreboard
                7 slots in the scoreboard
                Slots [Fw.    ]
                5 slots free

        followed by one line per slot that has been used, with the kernelish extras::

                0: F pid=1234 requests=0
        """
        chars = self.read_all()
        lines = [
            "POE::Component::Daemon::Scoreboard",
            f"{self._n} slots in the scoreboard",
            "Slots [" + "".join(chars) + "]",
            f"{sum(c in _FREE for c in chars)} slots free",
        ]
        lines.extend(
            f"{info.index}: {info.status} pid={info.pid} requests={info.requests}"
            for info in self.slots()
            if info.status != SlotState.EMPTY.value
        )
        return "\n    ".join(lines)

    # -- kernelish extras ---------------------------------------------------------------

    def slot(self, slot: int) -> SlotInfo:
        """A consistent snapshot of one slot (status, pid, requests, time of last change)."""
        self._check(slot)
        base = slot * SLOT_SIZE
        mm = self._mm
        # Seqlock read: the snapshot is good if the counter was even and unchanged around it.
        # A writer descheduled mid-update keeps the counter odd for a whole time slice, so
        # after a short spin the reader sleeps; one killed mid-update keeps it odd until the
        # parent's drop() rewrites the slot, so the reader gives up at a deadline and takes
        # the record as it is.
        deadline = 0.0
        tries = 0
        while True:
            before = _SEQ.unpack_from(mm, base + _SEQ_OFF)[0]
            record = _RECORD.unpack_from(mm, base)
            after = _SEQ.unpack_from(mm, base + _SEQ_OFF)[0]
            if before == after and not before & 1:
                break
            tries += 1
            if tries == _SPIN_TRIES:
                deadline = time.monotonic() + _SNAPSHOT_PATIENCE
            elif tries > _SPIN_TRIES:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.0001)
        char, _seq, pid, requests, changed = record
        return SlotInfo(slot, char.decode("latin-1"), pid, requests, changed)

    def slots(self) -> list[SlotInfo]:
        """Snapshots of every slot, in slot order."""
        return [self.slot(i) for i in range(self._n)]

    def summary(self) -> dict[str, int]:
        """How many slots are in each state, keyed by status character (all states present)."""
        counts = dict.fromkeys((s.value for s in SlotState), 0)
        for char in self.read_all():
            counts[char] = counts.get(char, 0) + 1
        return counts

    def close(self) -> None:
        """Unmap this process's view of the board (other processes keep theirs)."""
        self._mm.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called in this process."""
        return self._mm.closed

    def __enter__(self) -> Scoreboard:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._mm.closed:
            return f"<Scoreboard {self._n} slots, closed>"
        return f"<Scoreboard [{''.join(self.read_all())}]>"

    # -- internals ----------------------------------------------------------------------

    def _check(self, slot: int) -> None:
        # Perl carped and returned on an unknown slot; a Python caller gets an exception,
        # because writing someone else's slot silently is worse than failing loudly.
        if not 0 <= slot < self._n:
            raise IndexError(f"{slot} isn't a known slot (0..{self._n - 1})")

    def _store(self, slot: int, char: str, *, pid: int | None, requests: int | None) -> None:
        """Write one slot under its seqlock: the extra fields first, the status char last.

        The status byte is written last so that a process that sees the new status (the
        Daemon's check_scoreboard only reads the chars) also finds the new pid and counter.
        """
        base = slot * SLOT_SIZE
        seq = _SEQ.unpack_from(self._mm, base + _SEQ_OFF)[0]
        _SEQ.pack_into(self._mm, base + _SEQ_OFF, (seq | 1) & 0xFFFFFFFF)
        if pid is not None:
            _PID.pack_into(self._mm, base + _PID_OFF, pid)
        if requests is not None:
            _REQS.pack_into(self._mm, base + _REQS_OFF, requests)
        _CHANGED.pack_into(self._mm, base + _CHANGED_OFF, time.time())
        self._mm[base] = ord(char)
        _SEQ.pack_into(self._mm, base + _SEQ_OFF, ((seq | 1) + 1) & 0xFFFFFFFF)
