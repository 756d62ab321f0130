"""Small pieces of a connection's work: an error response ready to send in
a request's place, an iterable's ``close()`` (PEP 3333), who is at the
other end, and letting go of a logged exception's frames."""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from typing import TYPE_CHECKING, Any

from kernelish.http import Response

from ._response import RESPOND, Connection, ServerResponse

if TYPE_CHECKING:
    from kernelish.wheels import ReadWrite

    from ._connection import HTTPConnection

__all__ = ["answered", "clear_traceback", "close_iterable", "connection_info"]

log = logging.getLogger("kernelish.components.server_http")
_monotonic = time.monotonic


def answered(
    conn: HTTPConnection, error: Response, instead: ServerResponse | None, close: bool = True
) -> ServerResponse:
    """A ready-to-send ServerResponse carrying the error response ``error``."""
    request = instead.request if instead is not None else error.request
    response = ServerResponse(conn, request, conn.info)
    response.status, response.reason, response.headers = error.status, error.reason, error.headers
    response.body, response.detail, response.close = error.body, error.detail, close
    response.started = instead.started if instead is not None else _monotonic()
    response._answer, response._ended = RESPOND, True
    for name, value in conn.server.default_headers:
        if name not in response.headers:
            response.headers.add(name, value)
    return response


def close_iterable(body: Any) -> None:
    """PEP 3333: an iterable's ``close()`` is called however it ends."""
    close = getattr(body, "close", None)
    if close is not None and not isinstance(body, bytes | bytearray | memoryview | list | tuple):
        try:
            close()
        except Exception:
            log.exception("%d: the response body's close() failed", os.getpid())


def connection_info(session_id: int, heap: Any, client: ReadWrite, tls: bool) -> Connection:
    local_ip, local_port = "", None
    handle = client.get_input_handle()
    if isinstance(handle, socket.socket):
        try:
            where = handle.getsockname()
        except OSError:
            where = None
        if isinstance(where, tuple):
            local_ip, local_port = str(where[0]), int(where[1])
        elif isinstance(where, str):
            local_ip = where
    return Connection(
        session_id, heap.get("remote_ip", ""), heap.get("remote_port"), local_ip, local_port, tls
    )


def clear_traceback(exc: BaseException) -> None:
    """Let go of a logged exception's frames (they hold the connection)."""
    if exc.__traceback__ is not None:
        traceback.clear_frames(exc.__traceback__)


def log_raised(
    logger: logging.Logger,
    where: str,
    request: Any,
    remote_ip: str,
    head_sent: bool,
    exc: BaseException,
) -> None:
    """An application's handler (``where``) raised for ``request``: one ERROR
    line with the pid and the traceback, as text (shared with the WSGI sync
    worker, so both servers' logs read alike)."""
    what = f"{request.method} {request.target}" if request is not None else "a request"
    after = " after the status line went out" if head_sent else ""
    # The traceback as text, not exc_info: a log handler that keeps its
    # records (a test's, a MemoryHandler) would keep the traceback, whose
    # frames reach back (f_back) into the frames still running -- the
    # connection's wheel and socket among their locals.
    text = "".join(traceback.format_exception(exc)).rstrip()
    clear_traceback(exc)
    exc.__traceback__ = None
    logger.error(
        "%d: %s for %s from %s raised%s: %s: %s\n%s",
        os.getpid(),
        where,
        what,
        remote_ip,
        after,
        type(exc).__name__,
        exc,
        text,
    )
