"""The head of a plain response, written without the general path.

Most responses are a status, a few fields and a ``bytes`` body for a GET
or a POST.  :meth:`Response.prepare` and :meth:`Response.head_bytes` make
every decision of RFC 9112 for any response, at the price of a dozen
passes over the header list (``Connection``'s tokens, ``Content-Length``
and ``Transfer-Encoding`` removed and set, each field checked by a regular
expression): about a fifth of a hello-world request's time.  For the plain
case the decisions are few and known -- ``Content-Length`` is the body's
length, ``Connection`` says close or (to HTTP/1.0) keep-alive, ``Date`` is
the second's -- and each distinct field line is checked and encoded once,
then found in a small cache.  Anything else (1xx, 204, 304, HEAD,
CONNECT, a field that frames the message -- ``Content-Length``,
``Transfer-Encoding``, ``Connection``, ``Date`` -- or one that does not
pass the checks) goes the general way, which also reports the bad field.
"""

from __future__ import annotations

import re
import time
from email.utils import formatdate

from kernelish.http import Request

from ._response import ServerResponse

__all__ = ["plain_head"]

_FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "date"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
#: Field lines checked and encoded, by (name, value); bounded.
_LINES: dict[tuple[str, str], bytes] = {}
_LINES_MAX = 512
_STATUS: dict[tuple[int, str], bytes] = {}
_date: list[object] = [-1, b""]


def _date_line() -> bytes:
    second = int(time.time())
    if second != _date[0]:
        _date[0] = second
        _date[1] = b"Date: %s\r\n" % formatdate(second, usegmt=True).encode()
    return _date[1]  # type: ignore[return-value]


def plain_head(
    response: ServerResponse, request: Request, body_len: int, keep: bool
) -> bytes | None:
    """The head of ``response`` (a ``bytes`` body of ``body_len`` octets) if
    it is a plain one, with the framing decided; None otherwise."""
    status = response.status
    if status < 200 or status == 204 or status == 304:
        return None
    method = request.method
    if method == "HEAD" or method == "CONNECT":
        return None
    key = (status, response.reason)
    first = _STATUS.get(key)
    if first is None:
        if _BAD_VALUE.search(response.reason):
            return None
        first = f"HTTP/1.1 {status} {response.reason}\r\n".encode("latin-1", "replace")
        if len(_STATUS) < 256:
            _STATUS[key] = first
    lines = [first]
    for pair in response.headers:
        line = _LINES.get(pair)
        if line is None:
            name, value = pair
            if name.lower() in _FRAMING or not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
                return None
            try:
                line = f"{name}: {value}\r\n".encode("latin-1")
            except UnicodeEncodeError:
                return None
            if len(_LINES) < _LINES_MAX:
                _LINES[pair] = line
        lines.append(line)
    lines.append(_date_line())
    lines.append(b"Content-Length: %d\r\n" % body_len)
    if not keep:
        lines.append(b"Connection: close\r\n")
    elif request.version == "1.0":
        lines.append(b"Connection: keep-alive\r\n")
    lines.append(b"\r\n")
    response.close = not keep
    response.prepared = True
    return b"".join(lines)
