"""One request's life in ClientHTTP (POE::Component::Client::HTTP::Request), and the
responses the component makes up when there is no server's to give (its ``error``)."""

from __future__ import annotations

import html
import itertools
import re
from typing import Any

from kernelish.http import Request, Response, reason_phrase

from ._url import Target

__all__ = ["Call", "Reply", "error_response"]

# Call states.
QUEUED = "queued"  # waiting for a connection (the pool's bounds)
CONNECTING = "connecting"  # a connection is being opened for it
SENT = "sent"  # written; waiting for the response head
READING = "reading"  # the head is in; the body is coming
DONE = "done"  # answered

_ids = itertools.count(1)
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]+")
#: The extra-reference tag a request holds on the session that posted it.
_TAG = "ClientHTTP"


def error_response(status: int, message: str, request: Request | None) -> Response:
    """A response POE's Client::HTTP makes up (``error``): ``status`` with its standard
    reason, the message in ``X-PCCH-Errmsg`` (and in :attr:`Response.detail`), a small
    HTML page saying it is the client's error, and ``request`` set."""
    message = _UNSAFE.sub(" ", message).strip()
    reason = reason_phrase(status)
    page = (
        f"<html>\n<HEAD><TITLE>Error: {reason}</TITLE></HEAD>\n<BODY>\n"
        f"<H1>Error: {reason}</H1>\n{html.escape(message)}\n"
        "<small>This is a client error, not a server error.</small>\n</BODY>\n</HTML>\n"
    ).encode()
    response = Response(
        status,
        reason,
        [("X-PCCH-Errmsg", message), ("Content-Type", "text/html")],
        page,
    )
    response.request = request
    response.detail = message
    return response


class Reply:
    """Where a request's answers go: POE's ``$sender->postback($event, $request, $tag)``.

    Calling it posts ``event`` to the session that sent the request, ARG0
    ``[request, tag]`` and ARG1 the call's arguments as a list.  Like a postback it keeps
    that session alive (an extra reference) -- until :meth:`release`, which the
    component calls with the last answer, rather than whenever the garbage collector
    frees a closure (and without ``weakref.finalize``'s cost per request).
    """

    __slots__ = ("event", "kernel", "request", "session_id", "tag")

    def __init__(self, kernel: Any, session_id: int, event: str, request: Any, tag: Any) -> None:
        self.kernel = kernel
        self.session_id: int | None = session_id
        self.event = event
        self.request = request
        self.tag = tag
        kernel.refcount_increment(session_id, _TAG)

    def __call__(self, *args: Any) -> None:
        if self.session_id is not None:
            self.kernel.post(self.session_id, self.event, [self.request, self.tag], list(args))

    def release(self) -> None:
        """Let go of the session (after the last answer)."""
        session_id, self.session_id = self.session_id, None
        if session_id is not None:
            self.kernel.refcount_decrement(session_id, _TAG)


class Call:
    """A request from its ``request`` event to its answer, across redirects.

    ``request`` and ``tag`` are the user's (ARG0 of the response event); ``wire`` the
    request of the current hop as sent (``response.request``), ``target`` where it goes,
    ``key`` the pool's name for its connection.
    """

    __slots__ = (
        "attempt",
        "body",
        "conn",
        "got",
        "hops",
        "id",
        "key",
        "postback",
        "previous",
        "progress",
        "redirect",
        "request",
        "response",
        "retried",
        "state",
        "tag",
        "target",
        "timer",
        "total",
        "via_proxy",
        "wire",
    )

    def __init__(
        self,
        request: Request,
        tag: Any,
        postback: Reply,
        progress: Reply | None,
    ) -> None:
        self.id = next(_ids)
        self.request = request
        self.tag = tag
        self.postback: Reply | None = postback
        self.progress = progress
        self.state = QUEUED
        self.hops = 0
        self.previous: Response | None = None
        self.timer: int | None = None
        self.conn: Any = None
        self.attempt: Any = None
        self.retried = False
        self.wire: Request = request
        self.target: Target | None = None
        self.key: Any = None
        self.via_proxy = False
        self.response: Response | None = None
        self.body: list[bytes] = []
        self.got = 0
        self.total: int | None = None
        #: (target, request) of the redirect to follow once this body is read, or None.
        self.redirect: tuple[Target, Request] | None = None

    def begin_hop(self) -> None:
        """A new request (the first, a redirect's, a retry's) is about to go out."""
        self.state = QUEUED
        self.conn = None
        self.attempt = None
        self.response = None
        self.body = []
        self.got = 0
        self.total = None
        self.redirect = None

    def __repr__(self) -> str:
        return f"<Call {self.id} {self.wire.method} {self.wire.target} {self.state}>"
