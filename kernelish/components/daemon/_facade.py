"""The ``Daemon`` facade: the seed's ``package Daemon``.

``Daemon.update_status('req', info)`` reads like ``Daemon->update_status('req',
$info)``.  Each call is a ``call()`` to the component's alias, so it runs at
once -- the select loop must not run in between (a post-forking request is
forked before the parent accepts the next connection).
"""

from __future__ import annotations

import os
import sys
import weakref
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

from kernelish import current_kernel
from kernelish.peek import Peek

from ._child import PreforkChild

if TYPE_CHECKING:
    from ._component import DaemonComponent
    from ._scoreboard import Scoreboard

__all__ = ["Daemon"]


class Daemon:
    """Static calls into the running Daemon component (Perl's ``Daemon``)."""

    #: The component's alias while it runs ('' otherwise): ``$Daemon::alias``.
    alias: ClassVar[str] = ""
    _child: ClassVar[bool] = False
    _component: ClassVar[weakref.ref[DaemonComponent] | None] = None

    @classmethod
    def _attach(cls, component: DaemonComponent) -> None:
        cls.alias = component.config.alias
        cls._component = weakref.ref(component)

    @classmethod
    def _detach(cls, component: DaemonComponent) -> None:
        if cls._component is not None and cls._component() is component:
            cls.alias = ""

    @classmethod
    def is_child(cls) -> bool:
        """Whether this process is a child the Daemon forked (kernelish).

        A child whose ``run()`` returned should leave with ``os._exit(0)``:
        a normal interpreter exit tears down the heap it shares with the
        parent page by page, which costs a loaded machine most of a second.
        """
        return cls._child

    @classmethod
    def scoreboard(cls) -> Scoreboard | None:
        """The running Daemon's scoreboard -- the same shared memory in its
        parent and in every child -- or None without a pool (kernelish: what
        a status page reads; write nothing to it, the Daemon owns it)."""
        component = cls._component() if cls._component is not None else None
        if component is None or not cls.alias:
            return None
        return component.scoreboard

    @classmethod
    def requests_left(cls) -> int | None:
        """In a pre-forked child: how many more requests (``'req'``) it
        starts before it leaves -- 0 on its last one, or once it is leaving;
        None in any other process (kernelish: a child that serves several
        connections at once stops accepting when this reaches 0, so no
        connection is accepted past its ``requests``)."""
        component = cls._component() if cls._component is not None else None
        role = component.child if component is not None else None
        if not isinstance(role, PreforkChild):
            return None
        return 0 if role.leaving else max(0, role.max_requests - role.served)

    @classmethod
    def update_status(cls, status: str, parm: Any = None) -> Any:
        """Tell the Daemon our new status: 'req', 'long', 'wait' or 'done'."""
        return current_kernel().call(cls.alias, "update_status", status, parm)

    @classmethod
    def foreign_child(cls, pid: int) -> Any:
        """Report a child process user code spawned; it gets TERM at shutdown."""
        return current_kernel().call(cls.alias, "foreign_child", pid)

    @classmethod
    def shutdown(cls) -> Any:
        """Ask the Daemon to shut down (``Daemon->shutdown``)."""
        return current_kernel().call(cls.alias, "shutdown")

    @classmethod
    def status(cls) -> str | None:
        """The Daemon's human-readable status (``Daemon->status``)."""
        result: str | None = current_kernel().call(cls.alias, "status")
        return result

    @classmethod
    def peek(cls, verbose: bool = False, file: TextIO | None = None) -> str:
        """The kernel's state, with attention to why it will not exit
        (``Daemon->peek``): the event queue; with ``verbose``, every session
        with its reference count and what holds it alive; then the scoreboard.

        Returns the text.  Called from a signal watcher (the USR2 idiom,
        ``kernel.state('USR2', lambda _: Daemon.peek(True))``), or with
        ``file``, it also writes it there (stderr for the signal case),
        prefixed with the pid as the seed's ``warn`` did.
        """
        text = _peek_text(verbose)
        component = cls._component() if cls._component is not None else None
        if component is not None and component.scoreboard is not None:
            text += component.scoreboard.status() + "\n"
        current_kernel().sig_handled()
        if file is None and Peek().active_signal() is not None:
            file = sys.stderr
        if file is not None:
            file.write(f"{os.getpid()}: {text}")
            file.flush()
        return text


def _peek_text(verbose: bool) -> str:
    api = Peek()
    out = ["Event Queue:\n"]
    counts: dict[Any, dict[str, int]] = {}
    for item in api.event_queue_dump():
        out.append(f"\t* ID: {item['ID']} - Index: {item['index']}\n")
        out.append(f"\t\tPriority: {item['priority']}\n")
        out.append(f"\t\tEvent: {item['event']}\n")
        if verbose:
            src, dst = item["source"], item["destination"]
            if src is not dst:  # POE counts only events sent to *others*
                counts.setdefault(src, {}).setdefault("source", 0)
                counts[src]["source"] += 1
            counts.setdefault(dst, {}).setdefault("destination", 0)
            counts[dst]["destination"] += 1
            out.append(f"\t\tSource: {api.session_id_loggable(src)}\n")
            out.append(f"\t\tDestination: {api.session_id_loggable(dst)}\n")
            out.append(f"\t\tType: {item['type']}\n")
            out.append("\n")
    if verbose:
        sessions = api.session_list()
        if sessions:
            out.append("Sessions: \n")
        for session in sessions:
            counted = 0
            out.append(f"\tSession {api.session_id_loggable(session)} ({session!r})")
            refcount = api.get_session_refcount(session)
            out.append(f"\n\t\tref count: {refcount}\n")
            n = api.get_session_extref_count(session)
            counted += n
            if n:
                out.append(f"\t\textref count: {n}\n")
            n = api.session_handle_count(session)
            counted += n
            if n:
                out.append(f"\t\thandle count: {n} (Stay alive)\n")
            aliases = api.session_alias_list(session)
            counted += len(aliases)
            if aliases:
                out.append(f"\t\tAliases: {','.join(aliases)}\n")
            children = api.get_session_children(session)
            if children:
                counted += len(children)
                kids = ",".join(api.session_id_loggable(c) for c in children)
                out.append(f"\t\tChildren: {kids}\n")
            mine = counts.get(session, {})
            if mine.get("source"):
                out.append(f"\t\tEvent source count: {mine['source']} (Stay alive)\n")
                counted += 1
            if mine.get("destination"):
                out.append(f"\t\tEvent destination count: {mine['destination']} (Stay alive)\n")
                counted += 1
            reasons = api.stay_alive_reasons(session)
            if reasons["child_pids"]:
                out.append(f"\t\tChild processes: {reasons['child_pids']} (Stay alive)\n")
                counted += reasons["child_pids"]
            if refcount != counted:
                out.append(f"\t\tStay alive: refcount={refcount} counted={counted}\n")
    out.append("\n")
    return "".join(out)
