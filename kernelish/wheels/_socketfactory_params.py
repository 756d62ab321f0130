"""SocketFactory's constructor parameters: the pydantic model, imported the
first time a SocketFactory gets parameters outside its common shape (see
:mod:`kernelish._params`)."""

from __future__ import annotations

import socket

from pydantic import Field

from .._params_model import Params
from ._socketfactory import DEFAULT_ACCEPT_BATCH

__all__ = ["SocketFactoryParams"]


class SocketFactoryParams(Params):
    """Constructor parameters of :class:`SocketFactory` (CamelCase or snake_case)."""

    success_event: str
    failure_event: str
    socket_domain: int | None = None
    socket_type: int | None = None
    socket_protocol: str | int = "tcp"
    bind_address: str | None = None
    bind_port: int | str | None = None
    remote_address: str | None = None
    remote_port: int | str | None = None
    listen_queue: int = Field(socket.SOMAXCONN, gt=0)
    reuse: str | int | bool | None = None
    handle: socket.socket | int | None = None
    accept_batch: int = Field(DEFAULT_ACCEPT_BATCH, gt=0)
    listen_fd_name: str | None = None
    socket_activation: bool = True
