"""``serve()``'s options, validated (gunicorn's settings, where both have one).

Each option keeps gunicorn's name (``--max-requests`` is ``max_requests``)
and default, except where the sync worker's behaviour is kept under a
different default (``keep_alive``: 0, off, which is what gunicorn's sync
worker does whatever ``--keep-alive`` says).  A wrong one is refused when
the config is built, naming the option (:class:`ServeConfigError`).
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic import ConfigDict, Field, Strict, field_validator, model_validator

__all__ = ["Bind", "ServeConfig", "ServeConfigError", "parse_bind"]

_Count = Annotated[int, Strict(), Field(ge=0)]
_Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_Id = Annotated[str, Strict()] | Annotated[int, Strict(), Field(ge=0)]

#: ``--log-level`` names.
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class ServeConfigError(ValueError):
    """A refused option: one line per mistake, each naming the option."""

    def __init__(self, message: str, fields: list[str]) -> None:
        super().__init__(message)
        #: The options refused.
        self.fields = fields

    @classmethod
    def from_validation(cls, exc: pydantic.ValidationError) -> ServeConfigError:
        lines, fields = [], []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "options"
            fields.append(where)
            lines.append(f"{where}: {error['msg']}")
        return cls("serve: " + "; ".join(lines), fields)


class Bind(pydantic.BaseModel):
    """Where to listen: ``HOST:PORT``, ``[IPv6]:PORT``, ``HOST``, ``:PORT`` or ``unix:PATH``."""

    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = 8000
    unix: str | None = None

    def __str__(self) -> str:
        if self.unix is not None:
            return f"unix:{self.unix}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_bind(text: str) -> Bind:
    """gunicorn's ``--bind`` forms (one address; ``fd://`` is not supported --
    systemd's socket activation is, see ``docs/toolbox/wsgi.md``)."""
    if not isinstance(text, str) or not text:
        raise ValueError("must be HOST:PORT or unix:PATH")
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise ValueError("unix: needs a path")
        return Bind(unix=os.path.abspath(path))
    if text.startswith("fd://"):
        raise ValueError("fd:// is not supported (socket activation is: LISTEN_FDS)")
    host, port = text, "8000"
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: no ']' after an IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected ':PORT' after ']'")
            port = rest[1:]
    elif ":" in text:
        host, port = text.rsplit(":", 1)
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 0 to 65535")
    return Bind(host=host or "0.0.0.0", port=int(port))


class ServeConfig(pydantic.BaseModel):
    """The options of :func:`kernelish.wsgi.serve` (gunicorn's settings).

    Every field is gunicorn's setting of the same name unless said; see
    ``docs/from-gunicorn.md`` for the two side by side.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    app: Any
    """A WSGI callable, or ``'module:app'`` / ``'module:factory()'``."""
    bind: Bind = Field(default_factory=Bind)
    """``HOST:PORT`` or ``unix:PATH`` (gunicorn's default ``127.0.0.1:8000``)."""
    workers: Annotated[int, Strict(), Field(ge=1)] = 1
    """Pre-forked children (gunicorn's ``workers``)."""
    worker_connections: Annotated[int, Strict(), Field(ge=1)] = 1
    """Connections a child serves at once: 1 is gunicorn's sync worker."""
    max_requests: _Count = 0
    """Requests a child serves before it is replaced; 0: no limit."""
    max_requests_jitter: _Count = 0
    """Each child's limit is ``max_requests + randint(0, max_requests_jitter)``."""
    preload: Annotated[bool, Strict()] = False
    """Import the application in the parent, before the fork (``preload_app``)."""
    timeout: _Seconds = 30.0
    """A child whose request runs longer is ended and replaced; 0: never."""
    graceful_timeout: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 30.0
    """Seconds children get to finish their requests on TERM before KILL."""
    keep_alive: _Seconds = 0.0
    """Seconds a connection may idle between requests; 0: one request per connection
    (the sync worker's behaviour; gunicorn's own default, 2, applies to its other workers)."""
    header_timeout: Annotated[float, Field(gt=0, le=300, allow_inf_nan=False)] = 20.0
    """kernelish: seconds a request's head may take (slowloris: 408, the child freed)."""
    limit_request_line: Annotated[int, Strict(), Field(ge=0, le=8190)] = 4094
    """Longest request line; 0: 8190 (gunicorn's maximum)."""
    limit_request_fields: Annotated[int, Strict(), Field(ge=0, le=32768)] = 100
    """Most header fields; 0: 32768."""
    limit_request_field_size: _Count = 8190
    """Longest header field; 0: 65536 (the head's own limit)."""
    limit_request_body: Annotated[int, Strict(), Field(ge=1)] = 10 * 1024 * 1024
    """kernelish: the largest request body (413 beyond); bodies are read whole before
    the application runs."""
    user: _Id | None = None
    """Drop privileges to this user (name or uid) after binding."""
    group: _Id | None = None
    """... and this group."""
    pidfile: Path | None = None
    """A locked pidfile (and ``kernelish status|peek|stop PIDFILE``)."""
    daemon: Annotated[bool, Strict()] = False
    """Detach from the terminal."""
    chdir: Path | None = None
    """Change to this directory before the application is imported."""
    access_logfile: str | None = None
    """Common Log Format lines here (``'-'``: stdout); None: no access log."""
    error_logfile: str | None = None
    """The error log (``'-'`` or None: stderr); a file is reopened on HUP."""
    log_level: str = "info"
    """debug, info, warning, error or critical."""
    raw_env: list[str] = Field(default_factory=list)
    """``KEY=VALUE`` pairs put in the environment before the application is imported."""
    script_name: str = ""
    """The mount point (``SCRIPT_NAME``; gunicorn reads it from the environment)."""
    status: str | None = None
    """kernelish: path of the Daemon's status page (Apache's mod_status)."""
    metrics: str | None = None
    """kernelish: path of the Prometheus metrics page."""
    notify: Annotated[bool, Strict()] | None = None
    """systemd notify: None = when ``NOTIFY_SOCKET`` is set."""
    server_header: str = "kernelish"
    """The ``Server`` field of every response."""

    @field_validator("app")
    @classmethod
    def _app(cls, value: Any) -> Any:
        if isinstance(value, str):
            from ._app import split_spec

            split_spec(value)
            return value
        if not callable(value):
            raise ValueError("must be a WSGI callable or 'module:app'")
        return value

    @field_validator("bind", mode="before")
    @classmethod
    def _bind(cls, value: Any) -> Any:
        return parse_bind(value) if isinstance(value, str) else value

    @field_validator("max_requests_jitter")
    @classmethod
    def _jitter(cls, value: int, info: pydantic.ValidationInfo) -> int:
        if value and not info.data.get("max_requests"):
            raise ValueError("needs max_requests")
        return value

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            try:
                if isinstance(value, int) or value.isdigit():
                    pwd.getpwuid(int(value))
                else:
                    pwd.getpwnam(value)
            except (KeyError, OverflowError):
                raise ValueError(f"unknown user {value!r}") from None
        return value

    @field_validator("group")
    @classmethod
    def _group(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            try:
                if isinstance(value, int) or value.isdigit():
                    grp.getgrgid(int(value))
                else:
                    grp.getgrnam(value)
            except (KeyError, OverflowError):
                raise ValueError(f"unknown group {value!r}") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in LEVELS:
            raise ValueError(f"must be one of {', '.join(LEVELS)}")
        return value.lower()

    @field_validator("raw_env")
    @classmethod
    def _env(cls, value: list[str]) -> list[str]:
        for item in value:
            if "=" not in item or not item.partition("=")[0]:
                raise ValueError(f"{item!r} is not KEY=VALUE")
        return value

    @field_validator("chdir")
    @classmethod
    def _dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{str(value)!r} is not a directory")
        return value.absolute() if value is not None else None

    @field_validator("access_logfile", "error_logfile")
    @classmethod
    def _logfile(cls, value: str | None) -> str | None:
        if value is None or value == "-":
            return value
        path = Path(value).absolute()
        if not path.parent.is_dir():
            raise ValueError(f"directory {str(path.parent)!r} does not exist")
        if path.exists() and not path.is_file():
            raise ValueError(f"{str(path)!r} exists and is not a regular file")
        return str(path)

    @field_validator("script_name")
    @classmethod
    def _script_name(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value.rstrip("/")

    @field_validator("status", "metrics")
    @classmethod
    def _page(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must be a path starting with '/'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ServeConfig:
        if self.preload is False and not isinstance(self.app, str):
            # A callable is already imported: it is preloaded by nature.
            self.preload = True
        return self


def serve_config(**options: Any) -> ServeConfig:
    """A :class:`ServeConfig`, or :class:`ServeConfigError` naming the options refused."""
    try:
        return ServeConfig(**options)
    except pydantic.ValidationError as exc:
        raise ServeConfigError.from_validation(exc) from None
