"""Refusals at start-up, said in one line.

A daemon that cannot start -- a wrong parameter, a pidfile a live daemon
holds, a logfile that is a planted symbolic link -- is an operator's
problem, not a programmer's: it deserves one line naming what is wrong, not
a traceback through pydantic.  :class:`DaemonConfigError` turns pydantic's
report into that line, and :func:`install_excepthook` makes an uncaught
start-up refusal print just ``prog: ErrorName: message`` (exit status 1, as
for any uncaught exception); every other exception keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pydantic

__all__ = ["DaemonConfigError", "StartupError", "install_excepthook"]


class StartupError(Exception):
    """Marker base of the start-up refusals printed in one line."""


class DaemonConfigError(ValueError, StartupError):
    """A parameter of ``spawn()``/``new()`` is wrong; the one-line message
    names it (POE::Component::Daemon had no such check).  ``errors()``
    gives pydantic's list of errors, one dict per problem."""

    def __init__(self, message: str, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self._errors = list(errors or [])

    def errors(self) -> list[Any]:
        """pydantic's error list (``loc``, ``msg``, ``input`` ...)."""
        return list(self._errors)

    @classmethod
    def from_validation(cls, exc: pydantic.ValidationError) -> DaemonConfigError:
        """One line for every problem pydantic found, each naming its field."""
        parts = []
        for error in exc.errors():
            msg = str(error.get("msg", "invalid"))
            msg = msg.removeprefix("Value error, ")
            loc = error.get("loc") or ()
            if loc:
                field = str(loc[0])
                if error.get("type") == "extra_forbidden":
                    msg = "unknown parameter"
                parts.append(f"{field}={error.get('input')!r}: {msg}")
            else:
                parts.append(msg)
        return cls("bad Daemon configuration: " + "; ".join(parts), exc.errors())


def _one_line_refusals() -> tuple[type[BaseException], ...]:
    from ._pidfile import PidfileError
    from ._process import LogfileError, PrivilegeError

    return (StartupError, PidfileError, LogfileError, PrivilegeError)


def install_excepthook() -> None:
    """Print an uncaught start-up refusal as one line (once per process)."""
    previous = sys.excepthook
    if getattr(previous, "_kernelish_one_line", False):
        return

    def excepthook(
        kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        if isinstance(value, _one_line_refusals()):
            prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
            sys.stderr.write(f"{prog}: {kind.__name__}: {value}\n")
            sys.stderr.flush()
            return
        previous(kind, value, tb)

    excepthook._kernelish_one_line = True  # type: ignore[attr-defined]
    sys.excepthook = excepthook
