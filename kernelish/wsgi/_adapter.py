"""The WSGI adapter: a ServerHTTP handler that runs a PEP 3333 application.

Discussion
----------
ServerHTTP already does what a WSGI server's connection loop does -- the
head deferred to the body's first non-empty part (so ``start_response``
called inside a generator is seen), ``close()`` on the iterable however it
ends, chunking, HEAD, keep-alive, a 500 for an application that raises
before its status line went out and a closed connection after.  What is
left here is PEP 3333's own part (gunicorn's ``wsgi.py``):

* the environ, from :func:`kernelish.http.wsgi_environ`;
* ``start_response(status, headers, exc_info=None)``: the status parsed,
  hop-by-hop fields dropped (as gunicorn drops them; ``Connection: close``
  is kept and honoured), a second call only with ``exc_info`` -- which
  replaces the status and fields while nothing went out, and re-raises
  the application's exception once the status line did;
* the ``write()`` callable (PEP 3333's imperative API): each call sends its
  part at once, and the returned iterable's parts follow;
* an application's ``Content-Length`` is kept for a streamed body and left
  to the server (the real length) for a list of ``bytes``, so that the
  common ``[body]`` answer takes the server's plain-response path;
* ``timeout`` (gunicorn's ``--timeout``): a child whose application has
  not returned -- or whose body's iterator has not produced its next part
  -- within it is ended, its slot replaced by the Daemon.  A sync worker
  cannot be interrupted any other way; gunicorn's arbiter kills it
  (SIGABRT), here the child's own ``ITIMER_REAL`` does, without a
  heartbeat file per worker.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from kernelish import ARG0, ARG1, HandlerArgs
from kernelish.http import Headers, wsgi_environ

__all__ = ["HOP_BY_HOP", "WSGIApp", "WSGIHandler"]

log = logging.getLogger("kernelish.wsgi")

#: A WSGI application (PEP 3333).
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: Fields an application must not set (PEP 3333, RFC 9110 7.6.1): dropped
#: as gunicorn drops them.  ``Connection`` is kept: ``close`` is honoured.
HOP_BY_HOP = frozenset(
    {
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def _on_alarm(signum: int, frame: Any) -> None:
    """A request outlived ``timeout``: this child ends (gunicorn's
    "WORKER TIMEOUT"); the Daemon forks its replacement."""
    log.critical("%d: WORKER TIMEOUT: a request ran past --timeout; the worker exits", os.getpid())
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # pragma: no cover - a closed stream
            pass
    os._exit(1)


def _parse_status(status: Any) -> tuple[int, str]:
    if not isinstance(status, str):
        raise TypeError(f"start_response: status must be a str, not {type(status).__name__}")
    code, _, reason = status.partition(" ")
    if len(code) != 3 or not code.isdigit() or int(code) < 100:
        raise ValueError(f"start_response: status {status!r} is not '<3 digits> <reason>'")
    return int(code), reason


class _Call:
    """One request's ``start_response`` and ``write`` (their state)."""

    __slots__ = ("base", "length", "response", "started", "streaming", "written")

    def __init__(self, response: Any) -> None:
        self.response = response
        #: The fields the server set first (``Server``): kept on a restart.
        self.base: list[tuple[str, str]] = list(response.headers)
        self.started = False
        #: The body is streamed: an application's Content-Length is kept.
        self.streaming = False
        #: The application's Content-Length while the body's kind is unknown.
        self.length: str | None = None
        self.written = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: _ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """PEP 3333's ``start_response``."""
        response = self.response
        if exc_info is not None:
            try:
                if response.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no cycle through this frame (PEP 3333)
        elif self.started:
            raise AssertionError("start_response called a second time without exc_info")
        code, reason = _parse_status(status)
        fields = Headers(self.base)
        length = None
        for pair in headers:
            name, value = pair
            if type(name) is not str or type(value) is not str:
                raise TypeError(f"start_response: header {pair!r} is not a pair of str")
            lower = name.lower()
            if lower == "content-length":
                length = value
                continue
            if lower in HOP_BY_HOP:
                continue
            fields.add(name, value)
        if length is not None:
            if self.streaming:
                fields.add("Content-Length", length)
            else:
                self.length = length
        response.status, response.reason, response.headers = code, reason, fields
        self.started = True
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's ``write()``: ``data`` goes out now (after the head)."""
        if not self.started:
            raise AssertionError("write() before start_response()")
        if type(data) is not bytes:
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        self.stream()
        self.written = True
        self.response.send(data)

    def stream(self) -> None:
        """The body turned out to be streamed: the application's length stands."""
        if not self.streaming:
            self.streaming = True
            if self.length is not None:
                self.response.headers.add("Content-Length", self.length)
                self.length = None


class _Body:
    """An application's iterable, checked as the server pulls it: the
    status must have been set by its first part, each part is ``bytes``,
    and ``timeout`` holds for each part.  ``close()`` is passed on."""

    __slots__ = ("call", "iterable", "iterator", "timeout")

    def __init__(self, iterable: Iterable[bytes], call: _Call, timeout: float) -> None:
        self.iterable = iterable
        self.iterator: Iterator[bytes] | None = None
        self.call = call
        self.timeout = timeout

    def __iter__(self) -> _Body:
        return self

    def __next__(self) -> bytes:
        iterator = self.iterator
        if iterator is None:
            iterator = self.iterator = iter(self.iterable)
        timeout = self.timeout
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                part = next(iterator)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        else:
            part = next(iterator)
        if not self.call.started:
            raise AssertionError("the application's body began before start_response()")
        if type(part) is not bytes:
            raise TypeError(f"the application's body yielded {type(part).__name__}, not bytes")
        return part

    def close(self) -> None:
        close = getattr(self.iterable, "close", None)
        if close is not None:
            close()


class WSGIHandler:
    """A ServerHTTP handler running a WSGI application (PEP 3333), the part
    of gunicorn's ``wsgi.py`` and sync worker's ``handle_request`` that
    ServerHTTP does not already do.

    ``WSGIHandler(app)`` or ``WSGIHandler(loader=...)``: with a loader the
    application is made on first use (or by :meth:`load`) -- in a
    pre-forked child, after the fork, gunicorn's default without
    ``--preload``.  ``timeout`` (seconds, 0 = none) ends the process when
    the application takes longer (gunicorn's ``--timeout``; arm it in a
    child only, see :meth:`arm_timeout`).
    """

    def __init__(
        self,
        app: WSGIApp | None = None,
        *,
        loader: Callable[[], WSGIApp] | None = None,
        server_name: str = "localhost",
        script_name: str = "",
        timeout: float = 0.0,
        errors: Any = None,
    ) -> None:
        if app is None and loader is None:
            raise ValueError("WSGIHandler needs an application or a loader")
        self._app = app
        self.loader = loader
        self.server_name = server_name
        self.script_name = script_name
        self.timeout = float(timeout)
        self.errors = errors

    @property
    def app(self) -> WSGIApp:
        """The application, made by the loader on first use."""
        app = self._app
        if app is None:
            app = self.load()
        return app

    def load(self) -> WSGIApp:
        """Make the application now (a child does it once forked)."""
        if self._app is None:
            assert self.loader is not None
            self._app = self.loader()
        return self._app

    def arm_timeout(self) -> None:
        """Install the SIGALRM action of ``timeout`` in this process."""
        if self.timeout:
            signal.signal(signal.SIGALRM, _on_alarm)

    def __call__(self, _: HandlerArgs) -> None:
        """The ServerHTTP handler: ``_[ARG0]`` the request, ``_[ARG1]`` its response."""
        self.run(_[ARG0], _[ARG1])

    def run(self, request: Any, response: Any) -> None:
        """Answer ``request`` through ``response`` (a ServerResponse, or the
        sync worker's) with the application."""
        app = self._app or self.load()
        conn = response.connection
        environ = wsgi_environ(
            request,
            server_name=self.server_name,
            server_port=conn.local_port if conn.local_port is not None else "",
            remote_addr=conn.remote_ip,
            remote_port=conn.remote_port if conn.remote_port is not None else "",
            url_scheme="https" if conn.tls else "http",
            script_name=self.script_name,
            errors=self.errors,
        )
        call = _Call(response)
        timeout = self.timeout
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                result = app(environ, call.start_response)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        else:
            result = app(environ, call.start_response)
        if call.written:
            self._after_write(response, call, result)
            return
        if type(result) is list or type(result) is tuple:
            if not call.started:
                _close(result)
                raise AssertionError("the application returned without calling start_response()")
            for part in result:
                if type(part) is not bytes:
                    raise TypeError(
                        f"the application's body holds {type(part).__name__}, not bytes"
                    )
            response.body = result
        else:
            call.stream()
            response.body = _Body(result, call, timeout)
        response.respond()

    def _after_write(self, response: Any, call: _Call, result: Iterable[bytes]) -> None:
        """The application used ``write()``: its iterable's parts follow."""
        try:
            for part in result:
                if part:
                    call.write(part)
        finally:
            _close(result)
        response.done()


def _close(result: Any) -> None:
    close = getattr(result, "close", None)
    if close is not None and not isinstance(result, list | tuple):
        close()
