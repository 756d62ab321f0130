"""Run's constructor parameters: POE::Wheel::Run's checks, and the plan
they resolve to.

POE croaks on a missing Program, a non-list ProgramArgs, an unknown Conduit,
Filter beside StdioFilter, Redirect* beside the matching *Event, and
redirection with a pty; it only carps (and goes on) about a Winsize without
a pty or a StderrEvent on a pty.  kernelish refuses all of them with a
:class:`~kernelish.ParameterError` naming the parameter: a constructor that
goes on after a warning leaves a daemon running something other than what
its author wrote.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .._params import ParameterError, parse_params
from .._params_model import Params
from ..drivers import Driver
from ..filters import Filter

__all__ = ["DEFAULT_STDIN_MAX_BUFFER", "RunParams", "parse_run_params"]

log = logging.getLogger("kernelish.wheels")

DEFAULT_STDIN_MAX_BUFFER = 64 * 1024 * 1024
"""Default ``StdinMaxBuffer``: octets ``put()`` may queue for a child that
does not read its stdin (POE queues without a bound)."""

SHELL = "/bin/sh"

Conduit = Literal["pipe", "socketpair", "pty", "pty-pipe"]


def _check_redirect(value: Any) -> Any:
    if value is None or isinstance(value, (str, os.PathLike, int)):
        if isinstance(value, int) and value < 0:
            raise ValueError(f"must be an open file descriptor (got {value!r})")
        return value
    if callable(getattr(value, "fileno", None)):
        return value
    raise ValueError(f"must be a path, a file with fileno() or an fd (got {value!r})")


def _check_id(value: Any, kind: str) -> int | None:
    """A uid/gid from a number or a name (POE takes numbers only)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"must be a {kind} id or name (got {value!r})")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must be a {kind} id >= 0 (got {value!r})")
        return value
    if isinstance(value, str):
        try:
            if kind == "user":
                return pwd.getpwnam(value).pw_uid
            return grp.getgrnam(value).gr_gid
        except KeyError:
            raise ValueError(f"names no {kind} known to this system ({value!r})") from None
    raise ValueError(f"must be a {kind} id or name (got {value!r})")


class RunParams(Params):
    """Constructor parameters of :class:`~kernelish.wheels.Run` (CamelCase or
    snake_case), POE::Wheel::Run's, plus ``StdinMaxBuffer``."""

    program: Any
    program_args: Any = ()
    conduit: str = "pipe"
    winsize: Any = None
    close_on_call: bool = False
    no_set_sid: bool = False
    no_set_pgrp: bool = False
    priority: int = 0
    user: Any = None
    group: Any = None
    no_stdin: bool = False
    stdin_event: str | None = None
    stdout_event: str | None = None
    stderr_event: str | None = None
    close_event: str | None = None
    error_event: str | None = None
    filter: Filter[Any] | None = None
    stdio_filter: Filter[Any] | None = None
    stdin_filter: Filter[Any] | None = None
    stdout_filter: Filter[Any] | None = None
    stderr_filter: Filter[Any] | None = None
    stdio_driver: Driver | None = None
    stdin_driver: Driver | None = None
    stdout_driver: Driver | None = None
    stderr_driver: Driver | None = None
    redirect_stdin: Any = None
    redirect_stdout: Any = None
    redirect_stderr: Any = None
    redirect_output: Any = None
    stdin_max_buffer: int = Field(DEFAULT_STDIN_MAX_BUFFER, gt=0, strict=True)

    _redirects = field_validator(
        "redirect_stdin", "redirect_stdout", "redirect_stderr", "redirect_output"
    )(_check_redirect)

    @field_validator("program")
    @classmethod
    def _program(cls, value: Any) -> Any:
        if callable(value):
            return value
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("must not be an empty command")
            return value
        if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
            if not value:
                raise ValueError("must not be an empty argv list")
            for arg in value:
                if not isinstance(arg, (str, bytes, os.PathLike)):
                    raise ValueError(f"argv items must be str, bytes or paths (got {arg!r})")
            return list(value)
        raise ValueError(
            "must be an argv list, a shell command string or a callable "
            f"(got {type(value).__name__})"
        )

    @field_validator("program_args")
    @classmethod
    def _program_args(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, (list, tuple)):
            return tuple(value)
        raise ValueError(f"must be a list (got {type(value).__name__})")

    @field_validator("conduit")
    @classmethod
    def _conduit(cls, value: str) -> str:
        if value == "inet":
            raise ValueError("'inet' is not supported: use 'socketpair' (or 'pipe')")
        if value not in ("pipe", "socketpair", "pty", "pty-pipe"):
            raise ValueError(f"must be 'pipe', 'socketpair', 'pty' or 'pty-pipe' (got {value!r})")
        return value

    @field_validator("winsize")
    @classmethod
    def _winsize(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or len(value) not in (2, 4):
            raise ValueError(
                f"must be [lines, columns] or [lines, columns, x pixels, y pixels] (got {value!r})"
            )
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= 0xFFFF:
                raise ValueError(f"items must be ints in 0..65535 (got {value!r})")
        if len(value) == 2:
            # POE: a standard VGA cell of 9x16 pixels.
            lines, columns = value
            return (lines, columns, columns * 9, lines * 16)
        return tuple(value)

    @field_validator("user")
    @classmethod
    def _user(cls, value: Any) -> int | None:
        return _check_id(value, "user")

    @field_validator("group")
    @classmethod
    def _group(cls, value: Any) -> int | None:
        return _check_id(value, "group")

    @model_validator(mode="after")
    def _consistent(self) -> RunParams:
        pty = self.conduit in ("pty", "pty-pipe")
        if self.winsize is not None and not pty:
            raise ValueError("Winsize needs a pty: Conduit 'pty' or 'pty-pipe'")
        if self.conduit == "pty":
            if self.stderr_event is not None:
                raise ValueError(
                    "StderrEvent cannot be used with Conduit 'pty', where stderr goes to "
                    "the terminal too: use Conduit 'pty-pipe'"
                )
            if self.stderr_filter is not None:
                raise ValueError("StderrFilter cannot be used with Conduit 'pty'")
        redirected = [
            name
            for name, value in (
                ("RedirectStdin", self.redirect_stdin),
                ("RedirectStdout", self.redirect_stdout),
                ("RedirectStderr", self.redirect_stderr),
                ("RedirectOutput", self.redirect_output),
            )
            if value is not None
        ]
        if pty and redirected:
            raise ValueError(f"{redirected[0]} cannot be used with a pty Conduit")
        if self.redirect_output is not None and (
            self.redirect_stdout is not None or self.redirect_stderr is not None
        ):
            raise ValueError("RedirectOutput cannot be combined with RedirectStdout/RedirectStderr")
        out = self.redirect_output
        both = "RedirectOutput" if out is not None else None
        for name, redirect, event_name, event in (
            ("RedirectStdin", self.redirect_stdin, "StdinEvent", self.stdin_event),
            (
                both or "RedirectStdout",
                out if out is not None else self.redirect_stdout,
                "StdoutEvent",
                self.stdout_event,
            ),
            (
                both or "RedirectStderr",
                out if out is not None else self.redirect_stderr,
                "StderrEvent",
                self.stderr_event,
            ),
        ):
            if redirect is not None and event is not None:
                raise ValueError(f"{name} and {event_name} are mutually exclusive")
        if self.filter is not None:
            if self.stdio_filter is not None:
                raise ValueError("Filter and StdioFilter cannot be used together")
            if self.stderr_event is not None and self.stderr_filter is None:
                raise ValueError(
                    "Filter is deprecated: with StderrEvent use StdioFilter and StderrFilter"
                )
        return self


def parse_run_params(params: dict[str, Any]) -> RunParams:
    """Validate Run's parameters (see :class:`RunParams`)."""
    p = parse_params(RunParams, "Run", params)
    if p.filter is not None:
        log.warning("%d: Run: Filter is deprecated, use StdioFilter", os.getpid())
    return p


def argv_of(program: str | list[Any], args: tuple[Any, ...]) -> list[Any]:
    """The argv to exec: a list with ProgramArgs appended, or a shell string
    with ProgramArgs appended space-separated, through ``/bin/sh -c`` (POE's
    ``exec(join(" ", $program, @$prog_args))``)."""
    if isinstance(program, str):
        return [SHELL, "-c", " ".join([program, *map(str, args)])]
    return [*program, *args]


def describe_program(program: str | list[Any] | Callable[..., Any]) -> str:
    """The program as POE's "can't exec (...)" message shows it."""
    if isinstance(program, str):
        return program
    if isinstance(program, list):
        return " ".join(os.fsdecode(arg) for arg in program)
    return repr(program)


def refuse(message: str, param: str) -> ParameterError:
    """A ParameterError of Run's about ``param``."""
    return ParameterError(f"Run: {message}", owner="Run", params=(param,))
