"""The access log: one line per response in the Common Log Format (Apache's
``%h %l %u %t "%r" %>s %b``), through :mod:`logging` with the pid first, as
every kernelish log line has it::

    4242: 127.0.0.1 - - [10/Oct/2026:13:55:36 +0200] "GET /a?b=1 HTTP/1.1" 200 2326

Logger ``kernelish.components.server_http.access`` at INFO unless
``AccessLog`` names another (a name or a Logger); ``AccessLog=False`` logs
nothing.  A line is only formatted when the logger would emit it.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._response import ServerResponse

__all__ = ["ACCESS_LOGGER", "AccessLog"]

#: The access log's logger unless ``AccessLog`` names another.
ACCESS_LOGGER = "kernelish.components.server_http.access"


class AccessLog:
    """Writes Common Log Format lines to one logger."""

    __slots__ = ("_second", "_stamp", "logger")

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._second = -1
        self._stamp = ""

    @classmethod
    def of(cls, spec: bool | str | logging.Logger) -> AccessLog | None:
        """From ``AccessLog``: True (the default logger), a logger name, a
        Logger, or False (none)."""
        if spec is False:
            return None
        if isinstance(spec, logging.Logger):
            return cls(spec)
        return cls(logging.getLogger(ACCESS_LOGGER if spec is True else spec))

    def write(self, remote_ip: str, response: ServerResponse) -> None:
        """The line for ``response`` (if the logger emits INFO)."""
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        request = response.request
        if request is not None:
            target = request.target.replace("\\", "\\\\").replace('"', '\\"')
            line = f"{request.method} {target} HTTP/{request.version}"
        else:
            line = "-"
        logger.info(
            '%d: %s - - [%s] "%s" %d %s',
            os.getpid(),
            remote_ip or "-",
            self._now(),
            line,
            response.status,
            response.octets or "-",
        )

    def _now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second))
        return self._stamp
