"""The session table: IDs, aliases, and what keeps each session alive.

Discussion
----------
POE counts *kinds* of references, not items (POE-SEMANTICS 3.1): one for
"events queued to it", one for "events it queued to others", and one per
alias, extra-reference tag, watched fd, child session and awaited child
pid; signal watchers do not count.  A session keeps the two event counters
(``_to``, ``_from``) and the sum of the per-item kinds (``_refs``); the
table's :meth:`SessionTable.hold`, :meth:`~SessionTable.release` and
:meth:`~SessionTable.unref` keep them.

A session whose count reaches zero is *marked*; the dispatcher's sweep at the
end of the dispatch pass stops it unless something rescued it meanwhile (3.2)
-- any new reference drops the mark at once, so the sweep rarely has work.
The table itself never runs a handler: stopping a session is the
dispatcher's job (:mod:`._dispatch`).
"""

from __future__ import annotations

import errno
import itertools
from typing import TYPE_CHECKING

from ._session import Node, Session

if TYPE_CHECKING:
    from ._event import Event

__all__ = ["SessionTable"]

EEXIST = errno.EEXIST
EPERM = errno.EPERM
ESRCH = errno.ESRCH


class SessionTable:
    """Every live session by ID and by alias, and their reference counts:
    one of the kernel's collaborators (its dispatcher holds it)."""

    __slots__ = ("_ids", "aliases", "by_id", "extref_tags", "marked")

    def __init__(self) -> None:
        #: live sessions by ID
        self.by_id: dict[int, Session] = {}
        #: alias -> session
        self.aliases: dict[str, Session] = {}
        #: sessions whose count reached zero in this pass (swept at its end)
        self.marked: dict[Node, None] = {}
        #: extra-reference tags held, all sessions together (idle check)
        self.extref_tags = 0
        self._ids = itertools.count(1)

    def new_id(self) -> int:
        """The next session ID: 1, 2, 3 ... never reused in a process."""
        return next(self._ids)

    # -- the event references -----------------------------------------------

    def hold(self, dest: Node, source: Node) -> None:
        """The references a newly queued event holds on its two ends."""
        if not dest._to:
            # A marked session is rescued by any new reference (3.2); dropping
            # the mark now spares the sweep a look at it.
            self.marked.pop(dest, None)
        dest._to += 1
        if source is not dest:
            if not source._from:
                self.marked.pop(source, None)
            source._from += 1

    def release(self, event: Event) -> None:
        """Drop the references a queued event held (it ran or was purged)."""
        dest = event.dest
        dest._to -= 1
        if not dest._to and not dest._refs and not dest._from:
            self.marked[dest] = None
        source = event.source
        if source is not dest:
            source._from -= 1
            if not source._from and not source._refs and not source._to:
                self.marked[source] = None

    def unref(self, node: Node, n: int = 1) -> None:
        """Drop ``n`` per-item references (alias, tag, fd, child, pid)."""
        node._refs -= n
        if not node._refs and not node._to and not node._from:
            self.marked[node] = None

    # -- aliases ------------------------------------------------------------------

    def set_alias(self, session: Node, name: str) -> int:
        """``alias_set``: 0, or EEXIST if another session has ``name``."""
        owner = self.aliases.get(name)
        if owner is session:
            return 0
        if owner is not None:
            return EEXIST
        self.aliases[name] = session  # type: ignore[assignment]
        session._aliases.add(name)
        session._refs += 1
        return 0

    def remove_alias(self, session: Node, name: str) -> int:
        """``alias_remove``: 0, ESRCH (no such alias) or EPERM (not ours)."""
        owner = self.aliases.get(name)
        if owner is None:
            return ESRCH
        if owner is not session:
            return EPERM
        del self.aliases[name]
        owner._aliases.discard(name)
        self.unref(owner)
        return 0

    # -- extra references ---------------------------------------------------------

    def add_extref(self, session: Session, tag: str) -> int:
        """One more of ``session``'s extra-reference ``tag``; its count."""
        count = session._extrefs.get(tag, 0) + 1
        session._extrefs[tag] = count
        if count == 1:
            session._refs += 1
            self.extref_tags += 1
        return count

    def drop_extref(self, session: Session, tag: str) -> int | None:
        """One less of ``tag``; its count, or None if it had none."""
        count = session._extrefs.get(tag)
        if count is None:
            return None
        if count <= 1:
            del session._extrefs[tag]
            self.extref_tags -= 1
            self.unref(session)
            return 0
        session._extrefs[tag] = count - 1
        return count - 1

    # -- the tree -------------------------------------------------------------------

    def adopt(self, parent: Node, child: Session) -> None:
        """A new session: a child of ``parent``, which it holds (3.1)."""
        child._parent = parent
        parent._children[child] = None
        parent._refs += 1
        self.by_id[child.ID] = child

    def descendants(self, node: Node) -> list[Session]:
        """``node``'s subtree, breadth first, without ``node``."""
        out: list[Session] = []
        frontier = list(node._children)
        while frontier:
            out.extend(frontier)
            frontier = [c for s in frontier for c in s._children]
        return out

    def reparent(self, child: Session, new_parent: Node) -> None:
        """Move ``child`` under ``new_parent`` (``detach_*``)."""
        old = child._parent
        assert old is not None
        old._children.pop(child, None)
        new_parent._children[child] = None
        new_parent._refs += 1
        child._parent = new_parent
        self.unref(old)

    def forget(self, session: Session) -> None:
        """A stopped session leaves the table: its children go to its parent,
        its aliases and tags are dropped, its count is zeroed, and the
        parent loses the reference the child held (3.3, bookkeeping)."""
        parent = session._parent
        assert parent is not None
        parent._children.pop(session, None)
        for child in list(session._children):
            child._parent = parent
            parent._children[child] = None
            parent._refs += 1
        session._children.clear()
        for alias in session._aliases:
            self.aliases.pop(alias, None)
        session._aliases.clear()
        self.extref_tags -= len(session._extrefs)
        session._extrefs.clear()
        self.by_id.pop(session.ID, None)
        session._refs = 0
        self.marked.pop(session, None)
        self.unref(parent)
