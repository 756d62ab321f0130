"""ServerHTTP's constructor parameters: POEx::HTTP::Server's (``handlers``,
``handler``, ``alias``, ``concurrency``, ``headers``, ``keepalive``,
``keepalivetimeout``, ``timeout``), ServerTCP's for the listener, the HTTPD
filter's limits, and kernelish's own (the other timeouts, the access log,
the status page).

Checked once, at construction (pydantic through :mod:`kernelish._params`;
CamelCase or snake_case), each refusal naming the parameter.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field, field_validator, model_validator

from kernelish._params_model import Params

__all__ = ["DEFAULT_HIGH_MARK", "DEFAULT_LOW_MARK", "ServerHTTPParams"]

Callback = Callable[..., Any]

#: Octets of unwritten output at which a streamed body stops being pulled
#: (and the connection stops being read) ...
DEFAULT_HIGH_MARK = 256 * 1024
#: ... and at which it goes on.
DEFAULT_LOW_MARK = 64 * 1024


class ServerHTTPParams(Params):
    """Constructor parameters of :class:`~kernelish.components.server_http.ServerHTTP`."""

    # -- what answers (POEx::HTTP::Server) --
    handlers: Any = None
    handler: Any = None
    headers: Mapping[str, str] | list[tuple[str, str]] | None = None
    # -- the listener (ServerTCP's) --
    port: int | str = 0
    address: str | None = None
    hostname: str | None = None
    domain: int = socket.AF_INET
    alias: str | None = None
    concurrency: int = Field(1000, ge=-1)
    started: Callback | None = None
    stopped: Callback | None = None
    error: Callback | None = None
    ssl_context: ssl.SSLContext | None = Field(None, alias="SSLContext")
    handshake_timeout: float = Field(60.0, gt=0, allow_inf_nan=False)
    daemon: bool = False
    accept_batch: int = Field(16, gt=0)
    inline_states: dict[str, Callback] | None = None
    # -- connections --
    keep_alive: int = Field(100, ge=0, alias="KeepAlive")
    keep_alive_timeout: float = Field(5.0, gt=0, allow_inf_nan=False, alias="KeepAliveTimeout")
    header_timeout: float = Field(20.0, gt=0, allow_inf_nan=False)
    timeout: float = Field(60.0, gt=0, allow_inf_nan=False)
    request_timeout: float | None = Field(60.0, gt=0, allow_inf_nan=False)
    max_pipeline: int = Field(16, gt=0)
    high_mark: int = Field(DEFAULT_HIGH_MARK, gt=0)
    low_mark: int = Field(DEFAULT_LOW_MARK, gt=0)
    # -- the HTTPD filter's limits --
    max_content: int = Field(1024 * 1024, gt=0, strict=True)
    max_request_line: int = Field(8190, gt=0, strict=True)
    max_field_size: int = Field(8190, gt=0, strict=True)
    max_fields: int = Field(100, gt=0, strict=True)
    max_header_size: int = Field(64 * 1024, gt=0, strict=True)
    # -- logs and the status page --
    access_log: bool | str | logging.Logger = True
    status: str | None = None
    metrics: str | None = None
    status_refresh: float = Field(5.0, gt=0, allow_inf_nan=False)

    @field_validator("keep_alive", mode="before")
    @classmethod
    def _keep_alive(cls, value: Any) -> Any:
        # POEx: a true value that is not a count (or 1) means its default, 100.
        if value is True:
            return 100
        if value is False or value is None:
            return 0
        return value

    @field_validator("status", "metrics")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"must be a path starting with '/' (got {value!r})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ServerHTTPParams:
        nothing = self.handlers is None and self.handler is None
        if nothing and self.status is None and self.metrics is None:
            raise ValueError("needs Handlers or Handler (or a Status or Metrics page)")
        if self.handlers is not None and self.handler is not None:
            raise ValueError("Handler is Handlers={'': handler}: give one or the other")
        if self.low_mark >= self.high_mark:
            raise ValueError(f"LowMark ({self.low_mark}) must be below HighMark ({self.high_mark})")
        if self.domain == socket.AF_UNIX and not self.address:
            raise ValueError("Domain AF_UNIX needs the socket's path as Address")
        return self
