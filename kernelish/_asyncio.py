"""Running the kernel inside an asyncio loop: ``await kernel.run_async()``.

Discussion
----------
The kernel keeps its own selector and queue; asyncio only drives it.  The
kernel's epoll fd is itself pollable -- it is readable whenever any handle the
kernel watches is ready -- so the loop watches that one fd with
``add_reader`` and runs a non-blocking timeslice when it fires.  After each
slice the bridge schedules the next one: at once while posts are queued, at
the head timer's due time otherwise (the kernel's clock and ``loop.time()``
are both ``time.monotonic``).  A post, call or signal made from asyncio code
(outside any handler) kicks the bridge so it is dispatched promptly.

A handler may be a coroutine function: when the kernel runs under asyncio its
coroutine is scheduled as a task on the loop, the session is kept alive
(extra reference ``asyncio``) until the task ends, and an exception in it
goes through the kernel's DIE rule like any handler's.  ``await
kernel.call_async(dest, event, ...)`` awaits a coroutine handler's result.

After a fork inside ``run_async`` the child gets a fresh asyncio selector and
self-pipe (the loop's epoll set and wakeup socket would otherwise be shared
with the parent), with every reader and writer of the parent's loop kept,
as the kernel keeps its own watches.

``asyncio`` itself is imported when first used, not with kernelish: it
brings ``ssl`` and OpenSSL, about 2 MB of heap (``RssAnon`` after importing
the Daemon, the wheels and the filters: 22.7 MB with it, 20.5 MB without)
that every pre-forking or post-forking daemon would fork without using it.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from ._kernel import Kernel

from ._session import Lifecycle, Node, Session

__all__ = ["AsyncioBridge", "adopt_coroutine", "call_async", "run_async"]

log = logging.getLogger("kernelish")


class AsyncioBridge:
    """Drives one kernel from one running asyncio loop."""

    def __init__(self, kernel: Kernel, loop: asyncio.AbstractEventLoop) -> None:
        self.kernel = kernel
        self.loop = loop
        self.finished: asyncio.Future[None] = loop.create_future()
        self._handle: asyncio.Handle | asyncio.TimerHandle | None = None
        self._due: float | None = None
        self._reader_fd: int | None = None

    def watch_selector(self) -> None:
        """(Re)watch the kernel's selector fd on the loop."""
        fd = self.kernel._io.selector.fileno()  # type: ignore[attr-defined]
        if self._reader_fd is not None and self._reader_fd != fd:
            try:
                self.loop.remove_reader(self._reader_fd)
            except (ValueError, OSError):
                pass
        self._reader_fd = fd
        self.loop.add_reader(fd, self.kick)

    def unwatch_selector(self) -> None:
        """Stop watching the kernel's selector fd."""
        if self._reader_fd is not None:
            try:
                self.loop.remove_reader(self._reader_fd)
            except (ValueError, OSError):
                pass
            self._reader_fd = None

    def kick(self) -> None:
        """Run a timeslice as soon as the loop can."""
        if self._handle is not None and self._due is None:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._due = None
        self._handle = self.loop.call_soon(self._slice)

    def _schedule(self) -> None:
        kernel = self.kernel
        queue = kernel._queue
        if queue.has_live_post():
            self._due = None
            self._handle = self.loop.call_soon(self._slice)
            return
        head = queue.head_priority()
        if kernel._reaper.catching:
            soonest = kernel._core.clock() + 1.0
            head = soonest if head is None else min(head, soonest)
        if head is None:
            self._due = None
            # Nothing queued: one more slice if the kernel may be idle (its
            # IDLE check ends sessions that only hold aliases), else wait for
            # the selector fd.
            self._handle = self.loop.call_soon(self._slice) if kernel._is_idle() else None
            return
        self._due = head
        self._handle = self.loop.call_at(head, self._slice)

    def _slice(self) -> None:
        self._handle = None
        self._due = None
        kernel = self.kernel
        if not kernel._core.alive:
            self._finish()
            return
        try:
            kernel._timeslice(max_timeout=0.0)
        except BaseException as exc:
            self._finish(exc)
            return
        if not kernel._core.alive:
            self._finish()
            return
        self._schedule()

    def _finish(self, exc: BaseException | None = None) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.unwatch_selector()
        if not self.finished.done():
            if exc is None:
                self.finished.set_result(None)
            else:
                self.finished.set_exception(exc)

    def after_fork_child(self) -> None:
        """Give a child forked under ``run_async`` its own asyncio plumbing."""
        import asyncio

        _refresh_loop_after_fork(self.loop, self._reader_fd)
        self._reader_fd = None
        self.watch_selector()
        # asyncio's own at-fork hook forgets the running loop, but the child
        # is still inside it (we were called from one of its callbacks).
        asyncio._set_running_loop(self.loop)


async def run_async(kernel: Kernel) -> None:
    """``Kernel.run_async``: run the kernel inside the running loop."""
    if kernel._bridge is not None:
        raise RuntimeError("the kernel already runs under asyncio")
    kernel.has_forked()
    if not kernel._core.alive:
        return
    import asyncio  # here, not at import: see the module's discussion

    bridge = AsyncioBridge(kernel, asyncio.get_running_loop())
    kernel._io.no_standing_exclusive()  # the loop watches one fd
    kernel._bridge = bridge
    bridge.watch_selector()
    bridge.kick()
    try:
        await bridge.finished
    finally:
        bridge._finish()
        kernel._bridge = None
        if not kernel._core.alive:
            kernel._restore_os_signals()
    kernel._core.raise_pending()


async def call_async(kernel: Kernel, dest: Any, event: str, *args: Any) -> Any:
    """``Kernel.call_async``: ``call()``, a coroutine handler's result awaited."""
    import asyncio

    result = kernel.call(dest, event, *args)
    if isinstance(result, asyncio.Future | asyncio.Task):
        return await result
    return result


def adopt_coroutine(
    kernel: Kernel, session: Node, state: str, coro: Coroutine[Any, Any, Any]
) -> Any:
    """A handler returned a coroutine: run it as a task on the running
    loop, keeping its session alive until it ends."""
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        coro.close()
        raise RuntimeError(
            f"state {state!r} is a coroutine function: run the kernel with "
            "`await kernel.run_async()` to use coroutine handlers"
        ) from None
    session_id = session.ID if isinstance(session, Session) else None
    if session_id is not None:
        kernel.refcount_increment(session_id, "asyncio")
    core = kernel._core

    def wake() -> None:
        if kernel._bridge is not None:
            kernel._bridge.kick()

    async def guarded() -> Any:
        try:
            return await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(session, Session) and session._lifecycle is Lifecycle.ALIVE:
                prev = core.active_session
                core.active_session = session
                try:
                    core.handler_failed(exc, session, state, session, None, None, None, 0)
                finally:
                    core.active_session = prev
            else:
                log.exception("%d: coroutine %s failed", os.getpid(), state)
            return None
        finally:
            if session_id is not None and session._lifecycle is Lifecycle.ALIVE:
                kernel.refcount_decrement(session_id, "asyncio")
            wake()

    return loop.create_task(guarded())


def _refresh_loop_after_fork(loop: asyncio.AbstractEventLoop, kernel_fd: int | None) -> None:
    """A new selector and self-pipe for ``loop`` in a forked child.

    Uses two private attributes of ``asyncio.selector_events`` (``_selector``
    and the self-pipe); they have been stable since Python 3.4.
    """
    old: selectors.BaseSelector | None = getattr(loop, "_selector", None)
    if old is None:  # pragma: no cover - not a selector loop
        return
    keys = list(old.get_map().values())
    ssock: socket.socket | None = getattr(loop, "_ssock", None)
    csock: socket.socket | None = getattr(loop, "_csock", None)
    skip = {kernel_fd}
    if ssock is not None:
        skip.add(ssock.fileno())
    old.close()
    new = selectors.DefaultSelector()
    for key in keys:
        if key.fd in skip:
            continue
        try:
            new.register(key.fileobj, key.events, key.data)
        except (OSError, ValueError):
            continue
    loop._selector = new  # type: ignore[attr-defined]
    for sock in (ssock, csock):
        if sock is not None:
            sock.close()
    make_pipe = getattr(loop, "_make_self_pipe", None)
    if make_pipe is not None:
        loop._internal_fds -= 1  # type: ignore[attr-defined]
        make_pipe()
