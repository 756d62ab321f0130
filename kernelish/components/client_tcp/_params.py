"""ClientTCP's constructor parameters: POE::Component::Client::TCP's, and
kernelish's own (``SSLContext``, ``ServerHostname``, ``HandshakeTimeout``,
``InputTimeout``).  CamelCase or snake_case, checked at construction."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import Any

from pydantic import Field, field_validator, model_validator

from kernelish import Session
from kernelish._params_model import Params

__all__ = ["ClientTCPParams"]

Callback = Callable[..., Any]

_DOMAINS = {socket.AF_INET, socket.AF_INET6, socket.AF_UNIX}


class ClientTCPParams(Params):
    """Constructor parameters of :class:`~kernelish.components.client_tcp.ClientTCP`."""

    remote_address: str | None
    remote_port: int | str | None
    bind_address: str | None = None
    bind_port: int | str | None = None
    domain: int | None = None
    alias: str | None = None
    connect_timeout: float | None = Field(None, gt=0, allow_inf_nan=False)
    args: list[Any] | tuple[Any, ...] = ()
    started: Callback | None = None
    pre_connect: Callback | None = None
    connected: Callback | None = None
    connect_error: Callback | None = None
    disconnected: Callback | None = None
    server_input: Callback
    server_error: Callback | None = None
    server_flushed: Callback | None = None
    server_high: Callback | None = None
    server_low: Callback | None = None
    high_mark: int | None = Field(None, gt=0)
    low_mark: int | None = Field(None, gt=0)
    filter: Any = None
    inline_states: dict[str, Callback] | None = None
    object_states: list[Any] | None = None
    package_states: list[Any] | None = None
    session_type: type[Session] = Session
    session_params: Any = None
    # -- kernelish: not in POE --
    ssl_context: ssl.SSLContext | None = Field(None, alias="SSLContext")
    server_hostname: str | None = None
    handshake_timeout: float = Field(60.0, gt=0, allow_inf_nan=False)
    input_timeout: float | None = Field(None, gt=0, allow_inf_nan=False)

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: int | None) -> int | None:
        if value is not None and value not in _DOMAINS:
            raise ValueError(f"must be socket.AF_INET, AF_INET6 or AF_UNIX (got {value!r})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ClientTCPParams:
        if self.remote_port is None and self.domain != socket.AF_UNIX:
            raise ValueError("RemotePort is required (but for Domain AF_UNIX)")
        marks = [self.high_mark, self.low_mark, self.server_high, self.server_low]
        if any(m is not None for m in marks) and not all(m is not None for m in marks):
            raise ValueError(
                "If you use the Mark settings, you must define all four "
                "(HighMark, LowMark, ServerHigh, ServerLow)"
            )
        high, low = self.high_mark, self.low_mark
        if high is not None and low is not None and low >= high:
            raise ValueError(f"LowMark ({low}) must be below HighMark ({high})")
        return self
