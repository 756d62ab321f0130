"""ListenAccept's constructor parameters: the pydantic model, imported the
first time a ListenAccept is built (see :mod:`kernelish._params`)."""

from __future__ import annotations

import socket

from pydantic import Field, field_validator

from .._params_model import Params

__all__ = ["ListenAcceptParams"]


class ListenAcceptParams(Params):
    """Constructor parameters of :class:`ListenAccept` (CamelCase or snake_case)."""

    handle: socket.socket | int
    accept_event: str
    error_event: str | None = None
    accept_batch: int = Field(16, gt=0)

    @field_validator("handle")
    @classmethod
    def _listening(cls, value: socket.socket | int) -> socket.socket | int:
        sock = socket.socket(fileno=value) if isinstance(value, int) else value
        try:
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f"must be a stream socket (got {sock!r})")
            if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                raise ValueError("must be a listening socket (call listen() first)")
        except OSError as exc:
            raise ValueError(f"must be a socket ({exc.strerror or exc})") from None
        finally:
            if isinstance(value, int):
                sock.detach()
        return value
