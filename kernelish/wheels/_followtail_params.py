"""FollowTail's constructor parameters: the pydantic model, imported by the
first FollowTail (see :mod:`kernelish._params`)."""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field, field_validator, model_validator

from .._params_model import Params
from ..drivers import Driver
from ..filters import Filter

__all__ = ["FollowTailParams"]


def _check_filename(value: Any) -> Any:
    if value is None:
        return None
    try:
        path = os.fspath(value)
    except TypeError:
        raise ValueError(f"must be a path (str, bytes or os.PathLike; got {value!r})") from None
    if not path or (b"\0" if isinstance(path, bytes) else "\0") in path:
        raise ValueError(f"must be a non-empty path without NUL (got {value!r})")
    # Absolute now: a daemon's later chdir("/") must not change the file.
    return os.path.abspath(path)


def _check_handle(value: Any) -> Any:
    if value is None or isinstance(value, int) or callable(getattr(value, "fileno", None)):
        return value
    raise ValueError(f"must be a file, a pipe, a socket or an fd (got {value!r})")


class FollowTailParams(Params):
    """Constructor parameters of :class:`FollowTail` (CamelCase or snake_case)."""

    filename: Any = None
    handle: Any = None
    input_event: str
    reset_event: str | None = None
    error_event: str | None = None
    idle_event: str | None = None
    filter: Filter[Any] | None = None
    driver: Driver | None = None
    poll_interval: float = Field(1.0, gt=0)
    seek: int | None = Field(None, strict=True)
    seek_back: int | None = Field(None, strict=True)
    follow_symlinks: bool = False

    _filename = field_validator("filename")(_check_filename)
    _handle = field_validator("handle")(_check_handle)

    @model_validator(mode="after")
    def _consistent(self) -> FollowTailParams:
        if (self.filename is None) == (self.handle is None):
            raise ValueError("FollowTail requires a Handle or Filename parameter, but not both")
        if self.seek is not None and self.seek_back is not None:
            raise ValueError("can't have Seek and SeekBack at the same time")
        return self
