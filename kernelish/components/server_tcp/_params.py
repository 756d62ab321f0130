"""ServerTCP's constructor parameters: POE::Component::Server::TCP's, and
kernelish's own for servers that face the network.

Checked once, at construction (pydantic through :mod:`kernelish._params`;
CamelCase or snake_case): what POE croaks about it is refused here too, and
a few things POE lets through silently (a Hostname that does not resolve,
``ClientFilter`` beside ``ClientInputFilter``, a state the component needs
replaced by the user's) are refused with a message naming the parameter.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from kernelish import Session
from kernelish._params_model import Params

__all__ = ["DEFAULT_HIGH_MARK", "DEFAULT_LOW_MARK", "ServerTCPParams"]

Callback = Callable[..., Any]

#: Octets of unwritten output at which a client stops being read (when
#: ``ClientBackpressure`` is on and no ``HighMark`` is given) ...
DEFAULT_HIGH_MARK = 256 * 1024
#: ... and at which it is read again.
DEFAULT_LOW_MARK = 64 * 1024

_DOMAINS = {socket.AF_INET, socket.AF_INET6, socket.AF_UNIX}

#: The parameters that configure connection sessions: POE refuses them
#: without ClientInput (with an Acceptor, connections are the program's).
CLIENT_PARAMS = (
    "client_args",
    "client_connected",
    "client_disconnected",
    "client_error",
    "client_flushed",
    "client_filter",
    "client_input_filter",
    "client_output_filter",
    "client_pre_connect",
    "client_high",
    "client_low",
    "client_idle_timeout",
)


class ServerTCPParams(Params):
    """Constructor parameters of :class:`~kernelish.components.server_tcp.ServerTCP`."""

    # -- the listening session (POE) --
    port: int | str = 0
    address: str | None = None
    hostname: str | None = None
    domain: int = socket.AF_INET
    alias: str | None = None
    concurrency: int = Field(-1, ge=-1)
    acceptor: Callback | None = None
    error: Callback | None = None
    started: Callback | None = None
    stopped: Callback | None = None
    listener_args: list[Any] | tuple[Any, ...] = ()
    session_type: type[Session] = Session
    session_params: Any = None
    # -- connection sessions (POE) --
    client_args: list[Any] | tuple[Any, ...] = ()
    client_connected: Callback | None = None
    client_disconnected: Callback | None = None
    client_error: Callback | None = None
    client_flushed: Callback | None = None
    client_input: Callback | None = None
    client_pre_connect: Callback | None = None
    client_filter: Any = None
    client_input_filter: Any = None
    client_output_filter: Any = None
    client_shutdown_on_error: bool = True
    client_high: Callback | None = None
    client_low: Callback | None = None
    high_mark: int | None = Field(None, gt=0)
    low_mark: int | None = Field(None, gt=0)
    inline_states: dict[str, Callback] | None = None
    object_states: list[Any] | None = None
    package_states: list[Any] | None = None
    # -- kernelish: not in POE --
    client_idle_timeout: float | None = Field(None, gt=0, allow_inf_nan=False)
    client_backpressure: bool = True
    ssl_context: ssl.SSLContext | None = Field(None, alias="SSLContext")
    handshake_timeout: float = Field(60.0, gt=0, allow_inf_nan=False)
    daemon: bool = False
    daemon_requests: Literal["connection", "program"] = "connection"
    accept_batch: int = Field(16, gt=0)

    @field_validator("port")
    @classmethod
    def _port(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 0 <= value <= 65535:
            raise ValueError(f"must be 0..65535 (got {value})")
        return value

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: int) -> int:
        if value not in _DOMAINS:
            raise ValueError(f"must be socket.AF_INET, AF_INET6 or AF_UNIX (got {value!r})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ServerTCPParams:
        if (self.acceptor is None) == (self.client_input is None):
            raise ValueError("needs either an Acceptor or a ClientInput but not both")
        if self.acceptor is not None:
            given = [
                "".join(part.title() for part in name.split("_"))
                for name in CLIENT_PARAMS
                if name in self.model_fields_set
            ]
            if given:
                raise ValueError(f"{', '.join(given)} not permitted without ClientInput")
        if (self.client_input_filter is None) != (self.client_output_filter is None):
            raise ValueError("ClientInputFilter must be used with ClientOutputFilter")
        if self.client_filter is not None and self.client_input_filter is not None:
            raise ValueError(
                "ClientFilter cannot be combined with ClientInputFilter/ClientOutputFilter"
            )
        if (self.high_mark is None) != (self.low_mark is None):
            raise ValueError("HighMark and LowMark parameters require each other")
        high, low = self.high_mark, self.low_mark
        if high is not None and low is not None:
            if low >= high:
                raise ValueError(f"LowMark ({low}) must be below HighMark ({high})")
        elif self.client_high is not None or self.client_low is not None:
            raise ValueError("ClientHigh/ClientLow require HighMark and LowMark")
        if "daemon_requests" in self.model_fields_set and not self.daemon:
            raise ValueError("DaemonRequests needs Daemon=True")
        if self.domain == socket.AF_UNIX and not self.address:
            raise ValueError("Domain AF_UNIX needs the socket's path as Address")
        return self
