"""One HTTP connection: requests in, responses out in request order.

Discussion
----------
POEx::HTTP::Server reads a request, calls its handler, and reads the next
only when the handler said ``done``: a client that pipelines waits.  Here a
connection reads ahead -- up to ``MaxPipeline`` requests -- and each
request's handler runs as soon as its request is complete, so a slow
handler does not hold back the reading of the next.  Their responses
still go out in request order (RFC 9112 9.3.2): the connection keeps them
in a queue and writes only the one at its head; a later response that is
ready first waits, whole or in parts, until the ones before it are done.

The input is the HTTPD filter in streaming mode (a request's head as soon
as it is complete, its body in parts): that is what lets the server answer
``Expect: 100-continue`` before the body comes, refuse a body over
``MaxContent`` from its ``Content-Length``, and time the head and the body
apart.  The body is then gathered (up to ``MaxContent``) and the handler
gets the whole request.

Every timeout is a deadline kept here and checked by the server's one
sweep timer (:mod:`._server`), never a timer per connection: ``phase`` says
what the connection waits for and ``since`` since when.

* **waiting** for a request: the first must be complete within
  ``HeaderTimeout`` of the connection; later ones may idle
  ``KeepAliveTimeout`` and, once their first octets came, must be complete
  within ``HeaderTimeout`` of the previous response (slowloris: a head sent
  an octet a second is cut there, with a 408);
* **body**: ``Timeout`` seconds without an octet of the body, 408;
* **busy** answering: a handler that has not answered in
  ``RequestTimeout`` gets a 503 in its place; a client that reads none of
  a response for ``Timeout`` seconds is cut off;
* **lingering** after an error: the output is half-closed and the input
  read and dropped for at most two seconds, so the error response is not
  destroyed by a reset on the client's side (Apache's lingering close).

A failure costs only what it must: a handler that raises costs its
request (a 500, or the end of the connection if its status line already
went out), a client that resets costs its connection.  Each is logged
once.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from kernelish import HEAP, KERNEL, SESSION, HandlerArgs
from kernelish.http import Request, Response

from ._head import plain_head
from ._helpers import answered, close_iterable, connection_info
from ._response import NOT_YET, RESPOND, ServerResponse

if TYPE_CHECKING:
    from ._server import HTTPServer

__all__ = ["BODY", "BUSY", "LINGER", "WAIT", "HTTPConnection"]

log = logging.getLogger("kernelish.components.server_http")

WAIT, BODY, BUSY, LINGER, CLOSED = range(5)

#: Seconds an erroring connection is read and dropped before it closes.
LINGER_SECONDS = 2.0
#: Parts, and octets, pulled from a streamed body in one dispatch before
#: the other connections get their turn.
STREAM_PARTS = 16
STREAM_OCTETS = 256 * 1024

_monotonic = time.monotonic


class HTTPConnection:
    """The HTTP side of one ServerTCP connection session (``heap['http']``)."""

    __slots__ = (
        "body",
        "body_len",
        "closing",
        "continue_owed",
        "eof",
        "heap",
        "high",
        "info",
        "kernel",
        "last_octets",
        "paused",
        "phase",
        "queue",
        "reading",
        "refusing",
        "report",
        "served",
        "server",
        "session_id",
        "since",
    )

    def __init__(self, server: HTTPServer, _: HandlerArgs) -> None:
        heap = _[HEAP]
        self.server = server
        self.heap = heap
        self.kernel = _[KERNEL]
        self.session_id: int = _[SESSION].ID
        self.info = connection_info(self.session_id, heap, heap["client"], server.tls)
        self.queue: deque[ServerResponse] = deque()
        #: The request whose body is being read, its parts and their length.
        self.reading: Request | None = None
        self.body: list[bytes] = []
        self.body_len = 0
        self.phase = WAIT
        self.since = _monotonic()
        self.served = 0
        #: Close once the queue is answered (Connection: close, a drain).
        self.closing = False
        #: An error was answered: the rest of the input is dropped.
        self.refusing = False
        self.eof = False
        self.high = False
        self.paused = False
        self.continue_owed = False
        self.last_octets = 0
        self.report = server.reports_requests()

    @property
    def client(self) -> Any:
        """The connection's ReadWrite, read from the heap each time: nothing
        here may keep the wheel (and so the socket) alive once ServerTCP let
        go of it -- a logged traceback holds this object."""
        return self.heap.get("client")

    # -- input ------------------------------------------------------------------------------

    def input(self, _: HandlerArgs, record: Any) -> None:
        """A record of the HTTPD filter (streaming): a request's head, a
        part of its body, ``b""`` at its end, or a Response refusing it."""
        if self.refusing:
            return
        kind = record.__class__
        if kind is Request:
            if record.body_follows:
                self._body_starts(_, record)
            else:
                self._dispatch(_, record)
        elif kind is bytes:
            request = self.reading
            if request is None:
                return
            if record:
                self.body_len += len(record)
                if self.body_len > self.server.max_content:
                    self._refuse(_, Response.error(413, "body over MaxContent", request))
                    return
                self.body.append(record)
                self.since = _monotonic()
            else:
                body = self.body
                request.body = body[0] if len(body) == 1 else b"".join(body)
                self.reading, self.body, self.body_len = None, [], 0
                self._dispatch(_, request)
        elif isinstance(record, Response):
            self._refuse(_, record)

    def _body_starts(self, _: HandlerArgs, request: Request) -> None:
        length = request.content_length
        limit = self.server.max_content
        if length is not None and length > limit:
            detail = f"Content-Length {length} over MaxContent ({limit} octets)"
            self._refuse(_, Response.error(413, detail, request))
            return
        self.reading = request
        self.phase = BODY
        self.since = _monotonic()
        if request.expect_continue:
            # RFC 9110 10.1.1: the client waits for this before it sends
            # the body.  Behind pipelined responses it waits its turn.
            if self.queue:
                self.continue_owed = True
            else:
                self.client.put(Response(100))

    def _dispatch(self, _: HandlerArgs, request: Request) -> None:
        """A whole request: queue its response, run its handler."""
        server = self.server
        response = ServerResponse(self, request, self.info)
        headers = response.headers
        for name, value in server.default_headers:
            headers.add(name, value)
        response.started = now = _monotonic()
        queue = self.queue
        queue.append(response)
        self.phase, self.since = BUSY, now
        if len(queue) >= server.max_pipeline and not self.paused:
            self.paused = True
            self.client.pause_input()
        server.request_started(self)
        specials = server.specials
        if specials:
            pre = specials.get("pre_request")
            if pre is not None:
                self._guard(_, pre, response, (request,))
                if response._answer != NOT_YET or response.aborted:
                    return
        routes = server.routes
        found = routes.only or routes.find(request.path)
        if found is None:
            response.error(404, f"Nothing to do for {request.path}")
            return
        self._guard(_, found, response, (request, response))

    def _guard(self, _: HandlerArgs, target: Any, response: ServerResponse, args: Any) -> None:
        """Run a handler; one that raises costs its request only."""
        try:
            target.invoke(_, *args)
        except Exception as exc:
            self.server.handler_failed(self, response, exc, "its handler")
            self.recover(response)

    def recover(self, response: ServerResponse) -> None:
        """Its handler raised: a 500 in its place if nothing of it went out
        (the connection goes on), else the end of the connection."""
        if response.aborted or response._conn is None:
            return  # gone already, or all out
        if response._head_sent:
            self.abort()
            return
        if response._answer == RESPOND and not response.streaming:
            return  # it answered before it raised: the answer stands
        queue = self.queue
        index = queue.index(response)
        queue[index] = self._in_place(response, 500, "the handler raised")
        if index == 0:
            self.pump()

    def _in_place(self, response: ServerResponse, status: int, detail: str) -> ServerResponse:
        """An error response answering ``response``'s request instead."""
        response.aborted = True
        response._conn = None
        error = Response.error(status, detail)
        error.close = False
        del error.headers["Connection"]
        return answered(self, error, response, close=False)

    # -- output: the queue ---------------------------------------------------------------------

    def ready(self, response: ServerResponse) -> int:
        """A handler answered (or sent a part): write what may go out now."""
        queue = self.queue
        if queue and queue[0] is response:
            self.pump()
            high = self.high
        else:  # waiting its turn: its own parts are what it holds
            high = sum(map(len, response._parts)) >= self.server.high_mark
        if high and not response._ended:
            response._waiting = True
        return 1 if high else 0

    def pump(self) -> None:
        """Write the responses at the head of the queue, in order, as far as
        they are answered and the client takes them."""
        queue = self.queue
        while queue:
            response = queue[0]
            if response._answer == NOT_YET or not self._write(response):
                if response._waiting and not self.high and response is queue[0]:
                    response._waiting = False
                    self.kernel.post(self.session_id, "http_server_stream_request", response)
                return
            self._finish()
            if self.phase == CLOSED:
                return

    def _keep(self, request: Request) -> bool:
        """Whether the connection stays open after this response."""
        server = self.server
        return (
            not (
                self.closing
                or self.refusing
                or self.eof
                or self.served + 1 >= server.keep_alive
                or server.closing
            )
            and request.keep_alive
        )

    def _prepare(self, response: ServerResponse) -> None:
        server = self.server
        if (
            self.closing
            or self.refusing
            or self.eof
            or self.served + 1 >= server.keep_alive
            or server.closing
        ):
            response.close = True
        response.prepare(response.request)

    def _write(self, response: ServerResponse) -> bool:
        """Write what ``response`` has; True once it is all out."""
        client = self.client
        if response._answer == RESPOND:
            body = response.body
            if isinstance(body, bytes | bytearray | memoryview):
                response._head_sent = True
                request = response.request
                if request is not None and not response.close:
                    size = len(body)
                    head = plain_head(response, request, size, self._keep(request))
                    if head is not None:
                        response.octets = size
                        data = head + body if size <= 65536 else head
                        self.high = bool(
                            client.put(data) if data is not head else client.put(head, body)
                        )
                        return True
                self._prepare(response)
                if response.send_body:
                    response.octets = len(body)
                self.high = bool(client.put(response))
                return True
            if isinstance(body, list | tuple) and all(isinstance(p, bytes) for p in body):
                response.body = b"".join(body)  # a WSGI app's [b"..."]: one write
                close_iterable(body)
                return self._write(response)
            return self._stream(response)
        # send(): the head once, the parts so far, the end when done() came.
        if not response._head_sent:
            self._prepare(response)
            response._head_sent = True
            self.high = bool(client.put(response))
        parts = response._parts
        if parts:
            response._parts = []
            if response.send_body:
                for part in parts:
                    response.octets += len(part)
                    self.high = bool(client.put(part))
        if not response._ended:
            return False
        client.put(b"")
        return True

    def _stream(self, response: ServerResponse) -> bool:
        """Pull an iterable body while the client keeps up; a fair share per
        dispatch, then the other connections' turn."""
        stream = response._stream
        if stream is None:
            try:
                stream = response._stream = iter(response.body)
            except TypeError as exc:  # not bytes, not iterable: the handler's bug
                self.server.handler_failed(self, response, exc, "its body")
                replacement = self.queue[0] = self._in_place(response, 500, "a body of no type")
                return self._write(replacement)
        parts = octets = 0
        while not self.high:
            try:
                part = next(stream)
            except StopIteration:
                close_iterable(response.body)
                if not response._head_sent:
                    response.body = b""  # nothing came: an empty body, with its length
                    response._answer = RESPOND
                    return self._write(response)
                self.client.put(b"")
                return True
            except Exception as exc:
                close_iterable(response.body)
                self.server.handler_failed(self, response, exc, "its body's iterator")
                if response._head_sent:
                    self.abort()  # the status line went out: the end of the connection
                    return False
                replacement = self.queue[0] = self._in_place(response, 500, "the body raised")
                return self._write(replacement)
            if not part:
                continue
            if not response._head_sent:
                # The head waits for the first part: a WSGI application may
                # set its status from inside the generator.
                self._prepare(response)
                response._head_sent = True
                self.client.put(response)
                if not response.send_body:  # HEAD: the head is all
                    close_iterable(response.body)
                    self.client.put(b"")
                    return True
            data = part if isinstance(part, bytes) else bytes(part)
            response.octets += len(data)
            self.high = bool(self.client.put(data))
            parts += 1
            octets += len(data)
            if parts >= STREAM_PARTS or octets >= STREAM_OCTETS:
                self.kernel.post(self.session_id, "http_server_stream")
                return False
        return False  # at the high-water mark: ClientLow resumes it

    def _finish(self) -> None:
        """The response at the head is all out: the next one's turn, or the end."""
        queue = self.queue
        response = queue.popleft()
        response._conn = None
        self.served += 1
        server = self.server
        server.request_finished(self, response)
        if server.specials and "post_request" in server.specials:
            self.kernel.call(self.session_id, "http_server_post_request", response)
        if self.paused and len(queue) < server.max_pipeline:
            self.paused = False
            self.client.resume_input()
        if response.close:
            self.closing = True
        if queue:
            return
        if self.continue_owed:
            self.continue_owed = False
            self.client.put(Response(100))
        if self.closing or self.eof:
            self.close(linger=self.refusing)
        elif self.reading is not None:
            self.phase, self.since = BODY, _monotonic()
        else:
            self.phase, self.since = WAIT, _monotonic()

    # -- refusals, errors and the end --------------------------------------------------------

    def _refuse(self, _: HandlerArgs, error: Response) -> None:
        """Answer a request that cannot be served (after the ones before
        it), then close; the rest of the input is dropped."""
        self.refusing = True
        self.reading = None
        self.server.refused(self, error)
        response = ServerResponse(self, error.request, self.info)
        response.status, response.reason = error.status, error.reason
        response.headers, response.body, response.detail = error.headers, error.body, error.detail
        response.close = True
        response.started = _monotonic()
        specials = self.server.specials
        on_error = specials.get("on_error") if specials else None
        if on_error is not None:
            try:
                on_error.invoke(_, response)
            except Exception as exc:  # the error response goes out as it was
                self.server.handler_failed(self, response, exc, "on_error")
        self.queue.append(response)
        self.phase = BUSY
        response._answer, response._ended = RESPOND, True
        if self.queue[0] is response:
            self.pump()

    def timed_out(self, now: float) -> None:
        """The sweep found this connection past its deadline (see the
        module notes); act on it."""
        phase = self.phase
        if phase in (WAIT, BODY):
            # The request could not arrive in time: 408 if any of it came.
            pending = self.reading is not None or self.client.get_input_filter().get_pending()
            if pending:
                what = "body" if self.reading is not None else "head"
                self._refuse_timeout(f"the request's {what} did not arrive in time")
            else:
                self.close(linger=False)
        elif phase == BUSY and self.queue:
            response = self.queue[0]
            if response._answer == NOT_YET:
                self.server.request_timed_out(self, response)
                response.aborted = True  # the handler's late answer goes nowhere
                replacement = Response.error(503, "the handler did not answer in time")
                self.queue[0] = answered(self, replacement, response)
                self.pump()
            else:
                log.info(
                    "%d: %s did not read its response for %gs; closing the connection",
                    os.getpid(),
                    self.info.remote_ip,
                    self.server.timeout,
                )
                self.abort()
        else:
            self.close(linger=False)

    def _refuse_timeout(self, detail: str) -> None:
        error = Response.error(408, detail, self.reading)
        self.refusing = True
        self.reading = None
        self.server.refused(self, error)
        self.queue.append(answered(self, error, None))
        self.phase = BUSY
        self.pump()

    def deadline(self, now: float) -> bool:
        """Whether this connection is past its deadline (the sweep asks)."""
        phase = self.phase
        server = self.server
        if phase == WAIT:
            if self.served and not self.client.get_input_filter().get_pending():
                return now - self.since > server.keep_alive_timeout
            return now - self.since > server.header_timeout
        if phase == BODY:
            return now - self.since > server.timeout
        if phase == BUSY:
            queue = self.queue
            if not queue:
                return False
            response = queue[0]
            if response._answer == NOT_YET:
                limit = server.request_timeout
                return limit is not None and now - response.started > limit
            octets = self.client.get_driver_out_octets()
            if not octets or octets != self.last_octets:
                self.last_octets, self.since = octets, now
                return False
            return now - self.since > server.timeout
        if phase == LINGER:
            return now - self.since > LINGER_SECONDS
        return False

    def drain(self) -> None:
        """The server stops: finish what was asked, then close; an idle
        connection closes now."""
        self.closing = True
        if not self.queue and self.reading is None and self.client.is_idle():
            self.close(linger=False)

    def got_eof(self) -> None:
        """The client closed its side: answer what it asked, then close."""
        self.eof = True
        self.reading = None  # a body cut short is no request
        if self.phase == LINGER or not self.queue:
            self.close(linger=False)

    def close(self, linger: bool) -> None:
        """Close once the output is written; with ``linger``, half-close and
        drop the input for a while first (see the module notes)."""
        if self.phase == CLOSED:
            return
        if linger and not self.eof:
            self.phase, self.since = LINGER, _monotonic()
            if self.client.get_driver_out_octets():
                self.client.event(FlushedEvent="http_server_flushed")
            else:
                self.linger()
            return
        self.phase = CLOSED
        self.kernel.call(self.session_id, "shutdown")

    def linger(self) -> None:
        """The error response is written: half-close, drop what comes."""
        client = self.client
        client.shutdown_output()
        client.event(InputEvent="http_server_linger", FlushedEvent=None)
        if self.paused:
            self.paused = False
            client.resume_input()

    def abort(self) -> None:
        """Close at once: a reset, a stalled client, a body cut short."""
        if self.phase == CLOSED:
            return
        self.phase = CLOSED
        self.heap["got_an_error"] = True
        self.kernel.call(self.session_id, "shutdown")

    def gone(self) -> None:
        """The connection ended: every response still queued is aborted
        (its iterable closed), its handler's late answer goes nowhere."""
        self.phase = CLOSED
        queue = self.queue
        while queue:
            response = queue.popleft()
            response.aborted = True
            response._conn = None
            if response._stream is not None or response._answer == RESPOND:
                close_iterable(response.body)
            self.server.request_aborted(self, response)
