"""ClientHTTP's session: requests in, responses posted back (POE::Component::Client::HTTP).

Discussion
----------
POE's component is one session (alias ``weeble`` by default) with four public states --
``request``, ``cancel``, ``shutdown``, ``pending_requests_count`` -- and a postback per
request to the session that posted it: the response event gets ARG0 ``[request, tag]``
and ARG1 ``[response]`` (in streaming mode ``[response, chunk]``, the end
``[response, None]``), and the postback's reference keeps that session alive until its
answer is posted.  Every request gets exactly one final answer: the server's response,
or one the component makes up (:func:`~._call.error_response`, POE's ``error``):

=====  ==============================================================================
 400   not an http/https URL ("Unsupported URI scheme"), a request that cannot be
       written, a response that cannot be read (malformed, incomplete, reset: POE's
       "read error" and "incomplete response")
 406   a body over ``MaxSize``
 408   ``Timeout`` passed ("Request timed out"), a connect that timed out,
       ``cancel``, ``shutdown``
 500   the connection could not be made (the name, the connect, the TLS handshake)
=====  ==============================================================================

This module is the request's side: taking requests, building what goes on the wire,
redirects, answers.  :mod:`._transport` finds each request a connection and reads its
response.
"""

from __future__ import annotations

import logging
import os
import random
import time
from typing import Any

from kernelish import ARG0, ARG1, ARG2, ARG3, ARG4, KERNEL, SENDER, HandlerArgs, Session
from kernelish.http import Headers, Request, Response

from ._call import DONE, READING, Call, Reply, error_response
from ._params import ClientHTTPParams, proxies_of
from ._transport import Transport
from ._url import Target, no_proxy_matches, parse_target, resolve_location

__all__ = ["UserAgent"]

log = logging.getLogger("kernelish.components.client_http")

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Fields that describe a body, dropped with it.
_BODY_FIELDS = ("Content-Length", "Content-Type", "Content-Encoding", "Transfer-Encoding")
#: Fields that must not follow a redirect to another origin.
_CREDENTIALS = ("Authorization", "Proxy-Authorization", "Cookie")


def _default_agent() -> str:
    from kernelish import __version__

    return f"kernelish-ClientHTTP/{__version__}"


class UserAgent:
    """The ClientHTTP session's states and what they share (one per ``spawn``)."""

    def __init__(self, p: ClientHTTPParams) -> None:
        self.p = p
        agent = p.agent if p.agent is not None else _default_agent()
        self.agents = [agent] if isinstance(agent, str) else list(agent)
        self.version = p.protocol[len("HTTP/") :]
        self.streaming = p.streaming
        self.proxies = p.proxy_list()
        self.no_proxy = p.no_proxy_list()
        self.calls: dict[int, Call] = {}
        self.by_request: dict[Request, Call] = {}
        self.shut_down = False
        self.transport = Transport(p, self)
        self._last_sweep = 0.0

    def states(self) -> dict[str, Any]:
        """Every state of the session: the public four, the transport's, the timeout."""
        states: dict[str, Any] = {
            "_start": self.start,
            "_stop": self.stop,
            "_child": _nothing,
            "request": self.request,
            "cancel": self.cancel,
            "shutdown": self.shutdown,
            "pending_requests_count": self.pending_requests_count,
            "got_timeout": self.got_timeout,
        }
        states.update(self.transport.states())
        return states

    # -- the session's life ------------------------------------------------------------------

    def start(self, _: HandlerArgs) -> None:
        """``_start``: the alias."""
        _[KERNEL].alias_set(self.p.alias)

    def stop(self, _: HandlerArgs) -> None:
        """``_stop``: let go of every connection and request (nothing is answered now)."""
        for call in self.calls.values():
            for reply in (call.postback, call.progress):
                if reply is not None:
                    reply.release()
            call.postback = call.progress = None
        self.calls.clear()
        self.by_request.clear()
        self.transport.close_all()

    # -- the public states -------------------------------------------------------------------

    def request(self, _: HandlerArgs) -> None:
        """``request`` (response_event, request, tag, progress_event, proxy)."""
        kernel, sender = _[KERNEL], _[SENDER]
        event, request, tag, progress_event, proxy = _[ARG0], _[ARG1], _[ARG2], _[ARG3], _[ARG4]
        if not isinstance(sender, Session):
            # A program's mistake, but no reason to stop the component (POE dies here).
            log.error(
                "%d: ClientHTTP: a 'request' posted from outside a session cannot be "
                "answered (post it from a handler)", os.getpid(),
            )  # fmt: skip
            return
        if isinstance(request, str):
            request = Request("GET", request)
        postback = Reply(kernel, sender.ID, event, request, tag)
        if not isinstance(request, Request):
            kind = type(request).__name__
            self.refuse(postback, 400, f"ARG1 of 'request' must be a Request or a URL, not {kind}")
            return
        target = parse_target(request.target)
        try:
            proxies = proxies_of(proxy) if proxy else None
        except ValueError as exc:
            self.refuse(postback, 400, f"Proxy {exc}")
            return
        if self.shut_down:
            self.refuse(postback, 408, "Request timed out (component shut down)")
            return
        if target is None:
            self.refuse(postback, 400, "Unsupported URI scheme")
            return
        progress = None
        if progress_event:
            progress = Reply(kernel, sender.ID, progress_event, request, tag)
        call = Call(request, tag, postback, progress)
        self.calls[call.id] = call
        self.by_request[request] = call
        call.timer = kernel.delay_set("got_timeout", self.p.timeout, call.id)
        self.hop(call, request, target, proxies)

    @staticmethod
    def refuse(postback: Reply, status: int, message: str) -> None:
        """Answer a request at once, before it is a pending one."""
        request = postback.request if isinstance(postback.request, Request) else None
        postback(error_response(status, message, request))
        postback.release()

    def cancel(self, _: HandlerArgs) -> None:
        """``cancel`` (request): answer it 408 now, as POE does."""
        call = self.by_request.get(_[ARG0])
        if call is not None:
            self.fail(call, 408, "Request timed out (request canceled)")

    def shutdown(self, _: HandlerArgs) -> None:
        """``shutdown``: answer every pending request 408, close every connection, drop
        the alias; requests posted after it are answered 408 at once."""
        self.shut_down = True
        for call in list(self.calls.values()):
            self.fail(call, 408, "Request timed out (component shut down)")
        self.transport.close_all()
        _[KERNEL].alias_remove(self.p.alias)

    def pending_requests_count(self, _: HandlerArgs) -> int:
        """``pending_requests_count``: the requests not answered yet (use ``call``)."""
        return len(self.calls)

    def got_timeout(self, _: HandlerArgs) -> None:
        """A request's ``Timeout`` passed."""
        call = self.calls.get(_[ARG0])
        if call is not None:
            call.timer = None
            self.fail(call, 408, "Request timed out")

    # -- one hop -----------------------------------------------------------------------------

    def hop(
        self,
        call: Call,
        request: Request,
        target: Target,
        proxies: list[tuple[str, int]] | None = None,
    ) -> None:
        """Send ``request`` (the user's, or a redirect's) for ``call``."""
        call.begin_hop()
        call.target = target
        if proxies is None:
            proxies = self.proxies
        if proxies and target.scheme == "http" and not no_proxy_matches(target.host, self.no_proxy):
            host, port = random.choice(proxies) if len(proxies) > 1 else proxies[0]
            call.key = ("proxy", host, port)
            call.via_proxy = True
        else:
            call.key = (target.scheme, target.host, target.port)
            call.via_proxy = False
        call.wire = self.wire_request(request, target)
        now = time.monotonic()
        if now - self._last_sweep >= 1.0:
            self._last_sweep = now
            self.transport.pool.sweep()
        self.transport.dispatch(call)

    def wire_request(self, request: Request, target: Target) -> Request:
        """``request`` as it goes out (a copy; the user's is not changed): the URL without
        userinfo, the configured protocol, ``User-Agent`` and ``From`` unless it has them,
        ``Authorization`` from the URL's userinfo, ``Connection: close`` without
        keep-alive.  The filter adds ``Host`` and ``Content-Length``."""
        headers = Headers(request.headers)
        if "User-Agent" not in headers:
            agents = self.agents
            headers.add("User-Agent", agents[0] if len(agents) == 1 else random.choice(agents))
        if self.p.from_ and "From" not in headers:
            headers.add("From", self.p.from_)
        if target.authorization is not None and "Authorization" not in headers:
            headers.add("Authorization", target.authorization)
        if not self.p.keep_alive and "Connection" not in headers:
            headers.add("Connection", "close")
        return Request(request.method, target.url, self.version, headers, request.body)

    # -- what the transport reports ------------------------------------------------------------

    def head(self, call: Call, response: Response) -> None:
        """A response's head is in (its body follows, chunk by chunk)."""
        call.state = READING
        call.response = response
        response.request = call.wire
        response.previous = call.previous
        length = response.headers.get("Content-Length")
        call.total = int(length) if length is not None and length.isdigit() else None
        call.redirect = self.redirect_target(call, response)

    def chunk(self, call: Call, data: bytes) -> None:
        """Body octets: kept, or posted at once when streaming (none for a redirect)."""
        call.got += len(data)
        if call.redirect is not None:
            return  # a redirect's body is not the answer
        size = self.streaming
        if size:
            postback, response = call.postback, call.response
            assert postback is not None
            for at in range(0, len(data), size):
                postback(response, data[at : at + size] if len(data) > size else data)
            if call.timer is not None:  # POE's: a stream that flows does not time out
                self.transport.kernel.delay_adjust(call.timer, self.p.timeout)
        else:
            call.body.append(data)
        if call.progress is not None:
            call.progress(call.got, call.total, data)

    def complete(self, call: Call) -> None:
        """The response is complete (the connection is already given back)."""
        response = call.response
        assert response is not None
        if call.redirect is not None:
            target, follow = call.redirect
            call.previous = response
            call.hops += 1
            self.hop(call, follow, target)
            return
        if not self.streaming:
            body = call.body
            response.body = body[0] if len(body) == 1 else b"".join(body)
        self.answer(call, response)

    # -- redirects ----------------------------------------------------------------------------

    def redirect_target(self, call: Call, response: Response) -> Any:
        """``(target, request)`` to follow a redirect to, or None (not a redirect, no
        usable ``Location``, or ``FollowRedirects`` used up: the 3xx is the answer, marked
        with ``Client-Warning`` as LWP marks it)."""
        limit = self.p.follow_redirects
        if not limit or response.status not in _REDIRECTS:
            return None
        location = response.headers.get("Location")
        if not location:
            return None
        target = resolve_location(call.wire.target, location)
        if target is None:
            return None
        if call.hops >= limit:
            response.headers["Client-Warning"] = f"Redirect loop detected (FollowRedirects {limit})"
            return None
        old = call.wire  # the hop before, as sent: a 303 before a 307 stays a GET
        method, body = old.method, old.body
        headers = Headers(old.headers)
        status = response.status
        if method != "HEAD" and (status == 303 or (status in (301, 302) and method == "POST")):
            method, body = "GET", b""
            for name in _BODY_FIELDS:
                del headers[name]
        current = call.target
        assert current is not None
        same_origin = (target.scheme, target.host, target.port) == (
            current.scheme,
            current.host,
            current.port,
        )
        if not same_origin:
            del headers["Host"]
            for name in _CREDENTIALS:
                del headers[name]
        else:
            del headers["Cookie"]  # POE drops it on every redirect (rt.cpan.org #30400)
        return target, Request(method, target.url, old.version, headers, body)

    # -- answers ------------------------------------------------------------------------------

    def fail(self, call: Call, status: int, message: str) -> None:
        """Answer ``call`` with a made-up response (see the module notes)."""
        if call.state == DONE:
            return
        self.transport.abandon(call)
        log.info(
            "%d: ClientHTTP %s %s: %d %s", os.getpid(), call.wire.method, call.wire.target,
            status, message,
        )  # fmt: skip
        self.answer(call, error_response(status, message, call.wire))

    def answer(self, call: Call, response: Response) -> None:
        """Post the final answer; the request is no longer pending."""
        call.state = DONE
        self.calls.pop(call.id, None)
        if self.by_request.get(call.request) is call:
            del self.by_request[call.request]
        if call.timer is not None:
            self.transport.kernel.alarm_remove(call.timer)
            call.timer = None
        postback, progress = call.postback, call.progress
        call.postback = call.progress = None
        if progress is not None:
            progress.release()
        if postback is None:
            return
        if self.streaming:
            postback(response, None)
        else:
            postback(response)
        postback.release()


def _nothing(_: HandlerArgs) -> None:
    """A state with nothing to do."""
