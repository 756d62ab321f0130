"""Helpers for the ClientHTTP tests: an HTTP server on the test's kernel (ServerTCP with
the HTTPD filter) whose answers a test scripts, and a session that fetches."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any, ClassVar

from kernelish import ARG0, ARG1, HEAP, KERNEL, SESSION, HandlerArgs, Session, poe_kernel
from kernelish.components.server_tcp import ServerTCP
from kernelish.filters import HTTPD
from kernelish.http import Request, Response

from ._wheels import run_until

__all__ = ["Fetcher", "Server", "reset"]

#: What a scripted server does with a request: a Response or raw octets to send, or None
#: (the handler answers later, or never).
Handler = Callable[[Request, HandlerArgs], Response | bytes | None]


def reset(_: HandlerArgs) -> None:
    """Reset the connection (RST): SO_LINGER 0, then close."""
    sock = _[HEAP]["client"].get_output_handle()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _[KERNEL].yield_("shutdown")


class Server:
    """An HTTP/1.1 server on 127.0.0.1 answering with ``handler``; it counts the
    connections it accepted and keeps the requests it read.  :meth:`close_all` ends
    every server made (a test's teardown)."""

    made: ClassVar[list[Server]] = []

    def __init__(self, handler: Handler, alias: str = "httpd", **params: Any) -> None:
        Server.made.append(self)
        self.handler = handler
        self.alias = alias
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.requests: list[Request] = []
        self.sessions: set[int] = set()

        def connected(_: HandlerArgs) -> None:
            self.sessions.add(_[SESSION].ID)
            self.connections += 1
            self.open += 1
            self.most_open = max(self.most_open, self.open)

        def disconnected(_: HandlerArgs) -> None:
            self.sessions.discard(_[SESSION].ID)
            self.open -= 1

        def got(_: HandlerArgs) -> None:
            record = _[ARG0]
            client = _[HEAP]["client"]
            if isinstance(record, Response):  # HTTPD refused the request
                client.put(record)
                _[KERNEL].yield_("shutdown")
                return
            self.requests.append(record)
            answer = self.handler(record, _)
            if answer is not None:
                client.put(answer)

        params.setdefault("Address", "127.0.0.1")
        self.server = ServerTCP(
            Alias=alias,
            ClientFilter=HTTPD,
            ClientInput=got,
            ClientConnected=connected,
            ClientDisconnected=disconnected,
            ClientError=lambda _: None,
            InlineStates={
                "reply": lambda _: _[HEAP]["client"].put(_[ARG0]),
                "reset": reset,
            },
            **params,
        )

    def close(self) -> None:
        """Stop listening and close every connection."""
        poe_kernel.post(self.alias, "shutdown")
        for session_id in self.sessions:
            poe_kernel.post(session_id, "shutdown")

    @property
    def closed(self) -> bool:
        return not self.sessions and self.server.session is None

    @classmethod
    def close_all(cls) -> None:
        """Close every server made, and run the kernel until they are gone (their
        sockets closed by their wheels, not left to the garbage collector)."""
        servers, cls.made = cls.made, []
        for server in servers:
            server.close()
        try:
            run_until(lambda: all(s.closed for s in servers), 5, "the servers to close")
        except AssertionError:
            pass  # the test failed already, or left the kernel stopped

    @property
    def port(self) -> int:
        port = self.server.port
        assert port is not None
        return port

    def url(self, path: str = "/", scheme: str = "http") -> str:
        """A URL of this server, by its address."""
        return f"{scheme}://127.0.0.1:{self.port}{path}"


class Fetcher:
    """A session that posts requests to a ClientHTTP and keeps what comes back:
    ``answers`` holds ``(tag, response)``, ``packets`` every ``(ARG0, ARG1)``."""

    def __init__(self, ua: str = "ua") -> None:
        self.ua = ua
        self.packets: list[tuple[list[Any], list[Any]]] = []
        self.answers: list[tuple[Any, Response]] = []
        self.progress: list[list[Any]] = []

        def start(_: HandlerArgs) -> None:
            _[KERNEL].alias_set("fetcher")

        def response(_: HandlerArgs) -> None:
            request_packet, response_packet = _[ARG0], _[ARG1]
            self.packets.append((request_packet, response_packet))
            if len(response_packet) == 1 or response_packet[1] is None:
                self.answers.append((request_packet[1], response_packet[0]))

        def post(_: HandlerArgs) -> None:
            _[KERNEL].post(self.ua, "request", *_[ARG0])

        def progress(_: HandlerArgs) -> None:
            self.progress.append(_[ARG1])

        def call(_: HandlerArgs) -> Any:
            return _[KERNEL].call(self.ua, *_[ARG0])

        self.session = Session.create(
            inline_states={
                "_start": start,
                "response": response,
                "post": post,
                "progress": progress,
                "call_ua": call,
            }
        )

    def get(self, request: Request | str, tag: Any = None, *more: Any) -> None:
        """Post a request (from the fetcher's session)."""
        poe_kernel.post(self.session, "post", ("response", request, tag, *more))

    def call(self, *args: Any) -> Any:
        """``kernel.call(ua, ...)`` from the fetcher's session."""
        return poe_kernel.call(self.session, "call_ua", args)

    def wait(self, count: int, timeout: float = 5.0) -> list[tuple[Any, Response]]:
        run_until(lambda: len(self.answers) >= count, timeout, f"{count} answers")
        return self.answers
