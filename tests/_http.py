"""Helpers for the ServerHTTP tests: a client socket the kernel loop pumps,
and a parser of the responses it got (Content-Length, chunked, or the end
of the connection)."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from ._tcp import Peer
from ._wheels import run_until

__all__ = ["HTTPPeer", "Reply", "parse_replies"]


@dataclass
class Reply:
    """One parsed response."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    complete: bool = True
    chunked: bool = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def _chunks(data: bytes, at: int) -> tuple[bytes, int, bool]:
    body = b""
    while True:
        end = data.find(b"\r\n", at)
        if end < 0:
            return body, len(data), False
        size = int(data[at:end].split(b";")[0], 16)
        if size == 0:
            trailer_end = data.find(b"\r\n", end + 2)
            if trailer_end < 0:
                return body, len(data), False
            return body, trailer_end + 2, True
        start = end + 2
        if len(data) < start + size + 2:
            return body + data[start:], len(data), False
        body += data[start : start + size]
        at = start + size + 2


def parse_replies(data: bytes, eof: bool = True, head: bool = False) -> list[Reply]:
    """Every response in ``data``; the last one may be incomplete."""
    replies: list[Reply] = []
    at = 0
    while at < len(data):
        end = data.find(b"\r\n\r\n", at)
        if end < 0:
            break
        lines = data[at:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        at = end + 4
        reply = Reply(status, headers)
        if status < 200 or status in (204, 304) or head:
            pass
        elif "content-length" in headers:
            size = int(headers["content-length"])
            reply.body = data[at : at + size]
            reply.complete = len(reply.body) == size
            at += size
        elif headers.get("transfer-encoding") == "chunked":
            reply.chunked = True
            reply.body, at, reply.complete = _chunks(data, at)
        else:
            reply.body, at, reply.complete = data[at:], len(data), eof
        replies.append(reply)
    return replies


class HTTPPeer(Peer):
    """A client socket read while the kernel runs, with HTTP helpers."""

    def __init__(self, port: int) -> None:
        super().__init__(port)

    def replies(self, head: bool = False) -> list[Reply]:
        return parse_replies(self.data, self.eof, head)

    def wait_replies(self, n: int, timeout: float = 5.0, head: bool = False) -> list[Reply]:
        """Until ``n`` complete final responses came (or the end of file)."""

        def enough() -> bool:
            self.pump()
            done = [r for r in self.replies(head) if r.complete and r.status >= 200]
            return len(done) >= n or self.eof

        run_until(enough, timeout, f"{n} responses")
        return [r for r in self.replies(head) if r.status >= 200]

    def request(self, path: str = "/", *, method: str = "GET", extra: str = "") -> None:
        self.send(f"{method} {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n".encode())

    def abort(self) -> None:
        """Close with a TCP reset (SO_LINGER 0), as a crashed client does."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
