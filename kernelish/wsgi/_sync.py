"""The sync worker: gunicorn's ``SyncWorker`` on the kernel, one connection at a time.

Discussion
----------
With its defaults -- one connection at a time per child, closed after its
one request -- ``kernelish serve`` does not need ServerHTTP's machinery
of a session and a ReadWrite wheel per connection, a response queue,
pipelining and deadlines swept by a timer: that machinery is what lets a
child serve many connections at once, and a sync worker serves one.  So,
as gunicorn's sync worker does, each child watches the listening socket
(``select_read`` on the kernel, so signals, the Daemon's states and the
timers run between connections) and, when it is readable, accepts one
connection and serves it to the end *blocking*, inside that one event:

* the head is read with the HTTPD filter (llhttp, RFC 9112's checks and the
  limits -- the same records ServerHTTP gets), within ``header_timeout``
  of the accept: a slowloris client holds this one child that long, then
  gets its 408 (the parent never accepts);
* a body is read the same way, each read within ``header_timeout``, and at
  most ``max_content`` octets (413 beyond; ``Expect: 100-continue`` is
  answered);
* the application runs through :class:`~._adapter.WSGIHandler` with a
  response object that writes with ``sendall`` (a client not reading for
  ``write_timeout`` is cut off), closed after its response;
* a refusal (400, 408, 413, 414, 431, 501, 505) is sent, logged once at
  INFO, and the connection half-closed and drained for up to a second so
  that the client reads it rather than a reset;
* the scoreboard hears ``req`` and ``done`` around each connection, so the
  Daemon's ``requests`` (``--max-requests``) counts requests, and a child
  that reached it leaves after the one it served.

The choice is made in :func:`~._serve.serve`: the sync worker unless
``worker_connections`` > 1, ``keep_alive`` > 0 or a status/metrics page is
asked for, which take ServerHTTP.  ``bench/wsgi.py`` measures both.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kernelish import KERNEL, HandlerArgs, Session
from kernelish.components.server_http import (
    AccessLog,
    BlockingResponse,
    Connection,
    close_iterable,
    log_raised,
    plain_head,
)
from kernelish.filters import HTTPD
from kernelish.http import Headers, Request, Response

from ._adapter import WSGIHandler

if TYPE_CHECKING:
    from kernelish.components.daemon import DaemonComponent

__all__ = ["BlockingResponse", "SyncWorker"]

log = logging.getLogger("kernelish.wsgi")

#: Connections a child accepts in a row before the kernel's loop runs again.
ACCEPT_BATCH = 16
#: Seconds a refused connection is drained before it is closed.
LINGER_SECONDS = 1.0
#: Errors of accept(2) that mean "out of a resource": back off, do not spin.
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_monotonic = time.monotonic


class _Refused(Exception):
    """The request is answered with an error response (carried here)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class SyncWorker:
    """gunicorn's sync worker: each child accepts one connection at a time
    from ``sock`` and serves its one request blocking (see the module).

    Its session lives in the parent too (doing nothing there); in a child
    it starts watching ``sock`` on ``daemon_child`` and stops on
    ``daemon_shutdown``.
    """

    def __init__(
        self,
        sock: socket.socket,
        handler: WSGIHandler,
        *,
        header_timeout: float,
        write_timeout: float,
        max_content: int,
        max_request_line: int,
        max_fields: int,
        max_field_size: int,
        access: logging.Logger | None,
        server_header: str,
    ) -> None:
        self.sock = sock
        self.handler = handler
        self.header_timeout = header_timeout
        self.write_timeout = write_timeout
        self.max_content = max_content
        # Built here, in the parent: llhttp and the filter's model are
        # imported before the fork, pages the children share.
        self.proto = HTTPD(
            Streaming=True,
            MaxRequestLine=max_request_line,
            MaxFields=max_fields,
            MaxFieldSize=max_field_size,
        )
        self.access = AccessLog(access) if access is not None else None
        self.server_header = server_header
        self.base_headers = [("Server", server_header)]
        self.local_ip, self.local_port = _local(sock)
        self.update: Any = None
        self.role: Any = None
        #: The DaemonComponent that runs this worker (``serve`` sets it once spawned).
        self.component: DaemonComponent | None = None
        self.session = Session.create(
            inline_states={
                "_start": self._start,
                "daemon_child": self._child,
                "daemon_shutdown": self._stop,
                "sync_accept": self._accept,
                "sync_resume": self._resume,
                "shutdown": self._quota,
            }
        )

    def warm_up(self, rounds: int = 20) -> None:
        """Run the request path -- parser, environ, adapter, response, head --
        ``rounds`` times over a socketpair in the parent, with a stand-in
        application (never the real one: it runs in the children only).

        Why: Python 3.11 rewrites a function's bytecode in place once it has
        run a few times (the specializing interpreter), and the first run of
        each function in a child would copy the pages its code sits on.
        Warmed before the fork, those pages stay shared."""
        real, access = self.handler, self.access
        self.handler, self.access = WSGIHandler(_warm_app), None
        try:
            for _ in range(rounds):
                ours, theirs = socket.socketpair()
                with ours, theirs:
                    theirs.sendall(_WARM_REQUEST)
                    self.serve(ours, ("127.0.0.1", 0))
                    theirs.recv(65536)
        finally:
            self.handler, self.access = real, access

    # -- the session ---------------------------------------------------------------------------

    def _start(self, _: HandlerArgs) -> None:
        kernel = _[KERNEL]
        kernel.alias_set("kernelish.wsgi.sync")
        kernel.sig("daemon_child", "daemon_child")
        kernel.sig("daemon_shutdown", "daemon_shutdown")

    def _child(self, _: HandlerArgs) -> None:
        from kernelish.components.daemon import Daemon

        kernel = _[KERNEL]
        role = self.component.child if self.component is not None else None
        if role is not None:
            # The Daemon's own update_status state is this call: made
            # directly, twice a request, it skips the kernel's dispatch.
            self.update, self.role = role.update_status, role
        else:  # a Daemon without children (tests): through the kernel
            alias, call = Daemon.alias, kernel.call
            self.update = lambda status: call(alias, "update_status", status)
        self.update("wait")
        kernel.select_read(self.sock, "sync_accept")

    def _stop(self, _: HandlerArgs) -> None:
        kernel = _[KERNEL]
        kernel.select_read(self.sock)
        kernel.delay("sync_resume")
        kernel.sig("daemon_child")
        kernel.sig("daemon_shutdown")
        kernel.alias_remove("kernelish.wsgi.sync")

    def _quota(self, _: HandlerArgs) -> None:
        """The role's ``shutdown`` (its ``yield_``) lands here when it was
        called from this session: the child served its requests; pass it on."""
        from kernelish.components.daemon import Daemon

        _[KERNEL].call(Daemon.alias, "shutdown")

    def _resume(self, _: HandlerArgs) -> None:
        _[KERNEL].select_resume_read(self.sock)

    def _accept(self, _: HandlerArgs) -> None:
        """Accept and serve connections while there are some, up to
        :data:`ACCEPT_BATCH` (gunicorn's sync worker accepts until EAGAIN;
        the batch bounds how long a TERM waits for the kernel's loop)."""
        sock, update, role = self.sock, self.update, self.role
        for _n in range(ACCEPT_BATCH):
            try:
                conn, addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # none left, or another child took it
            except OSError as exc:
                if exc.errno in _EXHAUSTED:
                    log.warning("%d: accept: %s; pausing for 0.1 s", os.getpid(), exc)
                    kernel = _[KERNEL]
                    kernel.select_pause_read(sock)
                    kernel.delay("sync_resume", 0.1)
                return
            update("req")
            try:
                self.serve(conn, addr)
            except Exception:  # a bug of ours: this connection only, never the child
                log.exception("%d: serving a connection failed", os.getpid())
            finally:
                conn.close()
                update("done")
            if role is not None and (role.leaving or role.served >= role.max_requests):
                return  # its last request (max_requests): the Daemon stops it

    # -- one connection ------------------------------------------------------------------------

    def serve(self, conn: socket.socket, addr: Any) -> None:
        """Read one request from ``conn``, answer it, and leave (the caller closes)."""
        if isinstance(addr, tuple):
            remote_ip, remote_port = str(addr[0]), int(addr[1])
        else:
            remote_ip, remote_port = "", None
        parser = self.proto.clone()
        try:
            request = self._read(conn, parser)
        except _Refused as refused:
            self._refuse(conn, refused.response, remote_ip)
            return
        except OSError:
            return  # the client went away (reset) before its request was whole
        if request is None:
            return
        info = Connection(0, remote_ip, remote_port, self.local_ip, self.local_port, False)
        response = BlockingResponse(conn, request, info)
        response.headers = Headers(self.base_headers)
        response.started = _monotonic()
        conn.settimeout(self.write_timeout)
        try:
            self._answer(conn, request, response)
        except OSError as exc:
            response.aborted = True
            log.info(
                "%d: write error (%s) to %s mid-response; closing the connection",
                os.getpid(),
                exc.strerror or type(exc).__name__,
                remote_ip,
            )
        except Exception as exc:  # a body of the wrong type, a field that breaks the head
            self._failed(response, exc, "its response")
            if response.head_sent:
                response.aborted = True
            else:
                try:
                    self._error_500(conn, request, response)
                except OSError:
                    response.aborted = True
        if self.access is not None:
            self.access.write(remote_ip, response)

    def _read(self, conn: socket.socket, parser: HTTPD) -> Request | None:
        """The request, body and all; None if the client closed first."""
        deadline = _monotonic() + self.header_timeout
        request: Request | None = None
        parts: list[bytes] = []
        size = 0
        while True:
            left = deadline - _monotonic()
            if left <= 0:
                raise _Refused(Response.error(408, "request timed out", request))
            conn.settimeout(left)
            try:
                data = conn.recv(65536)
            except TimeoutError:
                raise _Refused(Response.error(408, "request timed out", request)) from None
            if not data:
                return None
            for record in parser.get([data]):
                kind = record.__class__
                if kind is Request:
                    if request is not None:
                        continue  # pipelined: a sync worker answers one
                    request = record  # type: ignore[assignment]
                    assert request is not None
                    if not request.body_follows:
                        return request
                    length = request.content_length
                    if length is not None and length > self.max_content:
                        detail = f"Content-Length {length} over the limit ({self.max_content})"
                        raise _Refused(Response.error(413, detail, request))
                    if request.expect_continue:
                        conn.sendall(_CONTINUE)
                    # The body: each read within header_timeout of the last.
                    deadline = _monotonic() + self.header_timeout
                elif kind is bytes:
                    if request is None:
                        continue
                    if record:
                        size += len(record)  # type: ignore[arg-type]
                        if size > self.max_content:
                            raise _Refused(Response.error(413, "body over the limit", request))
                        parts.append(record)  # type: ignore[arg-type]
                        deadline = _monotonic() + self.header_timeout
                    else:
                        request.body = parts[0] if len(parts) == 1 else b"".join(parts)
                        return request
                elif isinstance(record, Response):
                    raise _Refused(record)

    def _refuse(self, conn: socket.socket, error: Response, remote_ip: str) -> None:
        """Send ``error``, log it once, half-close and drain (lingering close)."""
        request = error.request
        what = f"{request.method} {request.target}" if request is not None else "a request"
        log.info(
            "%d: %d %s to %s from %s: %s",
            os.getpid(),
            error.status,
            error.reason,
            what,
            remote_ip or "-",
            error.detail,
        )
        for name, value in self.base_headers:
            if name not in error.headers:
                error.headers.add(name, value)
        error.close = True
        error.prepare(request)
        try:
            conn.settimeout(self.write_timeout)
            conn.sendall(error.head_bytes() + (error.body if error.send_body else b""))  # type: ignore[operator]
            conn.shutdown(socket.SHUT_WR)
            deadline = _monotonic() + LINGER_SECONDS
            while (left := deadline - _monotonic()) > 0:
                conn.settimeout(left)
                if not conn.recv(65536):
                    break
        except OSError:
            pass
        if self.access is not None and request is not None:
            logged = BlockingResponse(
                conn, request, Connection(0, remote_ip, None, "", None, False)
            )
            logged.status, logged.octets = error.status, len(error.body)  # type: ignore[arg-type]
            self.access.write(remote_ip, logged)

    def _answer(self, conn: socket.socket, request: Request, response: BlockingResponse) -> None:
        try:
            self.handler.run(request, response)
        except Exception as exc:
            self._failed(response, exc, "its handler")
            if not response.head_sent:
                self._error_500(conn, request, response)
            else:
                response.aborted = True
            return
        if response.streamed:  # write(): the adapter ended it
            return
        body = response.body
        if type(body) is list or type(body) is tuple:
            try:
                data = b"".join(body)
            except TypeError:
                response.body = iter(body)
                self._stream(conn, request, response)
                return
        elif isinstance(body, bytes | bytearray | memoryview):
            data = bytes(body)
        else:
            self._stream(conn, request, response)
            return
        head = plain_head(response, request, len(data), False)
        if head is None:  # HEAD, 204, 304, a framing field: the general way
            response.body = data
            response.close = True
            response.prepare(request)
            head = response.head_bytes()
            if not response.send_body:
                data = b""
        response.mark_head_sent()
        response.octets = len(data)
        conn.sendall(head + data if len(data) <= 65536 else head)
        if len(data) > 65536:
            conn.sendall(data)

    def _stream(self, conn: socket.socket, request: Request, response: BlockingResponse) -> None:
        """An iterable body: the head waits for its first part (a status set
        inside a generator is seen), chunked to an HTTP/1.1 client."""
        body = response.body
        try:
            iterator: Iterator[Any] = iter(body)
            first: Any = b""
            try:
                while not first:
                    first = next(iterator)
                if type(first) is not bytes:
                    raise TypeError(f"the body yielded {type(first).__name__}, not bytes")
            except StopIteration:
                first = b""
            except Exception as exc:
                self._failed(response, exc, "its body's iterator")
                self._error_500(conn, request, response)
                return
            if not first:
                response.body = b""
                self._plain_empty(conn, request, response)
                return
            response.body = ()
            response.close = True
            response.prepare(request)
            chunked = "chunked" in response.headers.tokens("Transfer-Encoding")
            send_body = response.send_body
            head = response.head_bytes()
            response.mark_head_sent()
            if not send_body:
                conn.sendall(head)
                return
            part: Any = first
            pending = [head]
            while True:
                data = part
                response.octets += len(data)
                pending.append(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                conn.sendall(b"".join(pending))
                pending = []
                try:
                    part = next(iterator)
                    while not part:
                        part = next(iterator)
                    if type(part) is not bytes:
                        raise TypeError(f"the body yielded {type(part).__name__}, not bytes")
                except StopIteration:
                    break
                except Exception as exc:
                    self._failed(response, exc, "its body's iterator")
                    response.aborted = True  # the status line went out: cut
                    return
            if chunked:
                conn.sendall(b"0\r\n\r\n")
        finally:
            close_iterable(body)

    def _plain_empty(
        self, conn: socket.socket, request: Request, response: BlockingResponse
    ) -> None:
        response.close = True
        response.prepare(request)
        response.mark_head_sent()
        conn.sendall(response.head_bytes())

    def _error_500(self, conn: socket.socket, request: Request, response: BlockingResponse) -> None:
        error = Response.error(500, "the application raised", request)
        for name, value in self.base_headers:
            error.headers.add(name, value)
        error.prepare(request)
        response.status, response.octets = 500, len(error.body)  # type: ignore[arg-type]
        response.mark_head_sent()
        conn.sendall(error.head_bytes() + (error.body if error.send_body else b""))  # type: ignore[operator]

    def _failed(self, response: BlockingResponse, exc: Exception, where: str) -> None:
        """The application raised: logged once, with the pid and the traceback
        (the same line ServerHTTP writes)."""
        remote_ip = response.connection.remote_ip
        log_raised(log, where, response.request, remote_ip, response.head_sent, exc)


_WARM_REQUEST = b"GET /warm?up=1 HTTP/1.1\r\nHost: warm\r\nUser-Agent: warm\r\n\r\n"


def _warm_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
    return [b"warm"]


def _local(sock: socket.socket) -> tuple[str, int | None]:
    try:
        where = sock.getsockname()
    except OSError:
        return "", None
    if isinstance(where, tuple):
        return str(where[0]), int(where[1])
    return str(where), None
