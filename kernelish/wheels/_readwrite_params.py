"""ReadWrite's constructor parameters: the pydantic model, and the common
shape checked without it (a wheel is built per connection).

Split from :mod:`._readwrite`; ``ReadWrite`` and its tests import from here.
"""

from __future__ import annotations

import socket
from typing import Any

from pydantic import Field, field_validator, model_validator

from .._params import Params
from ..drivers import Driver
from ..filters import Filter

__all__ = ["ReadWriteParams"]


def _check_handle(value: Any) -> Any:
    if value is None or isinstance(value, int) or callable(getattr(value, "fileno", None)):
        return value
    raise ValueError(f"must be a socket, a file with fileno() or an fd (got {value!r})")


class ReadWriteParams(Params):
    """Constructor parameters of :class:`ReadWrite` (CamelCase or snake_case)."""

    handle: Any = None
    input_handle: Any = None
    output_handle: Any = None
    driver: Driver | None = None
    filter: Filter[Any] | None = None
    input_filter: Filter[Any] | None = None
    output_filter: Filter[Any] | None = None
    input_event: str | None = None
    error_event: str | None = None
    flushed_event: str | None = None
    high_mark: int | None = Field(None, gt=0)
    low_mark: int | None = Field(None, gt=0)
    high_event: str | None = None
    low_event: str | None = None
    auto_flush: bool = False
    input_timeout: float | None = Field(None, gt=0, allow_inf_nan=False)
    backpressure: bool = False

    _handles = field_validator("handle", "input_handle", "output_handle")(_check_handle)

    @model_validator(mode="after")
    def _consistent(self) -> ReadWriteParams:
        if self.handle is not None:
            if self.input_handle is not None or self.output_handle is not None:
                raise ValueError("Handle cannot be combined with InputHandle/OutputHandle")
        elif self.input_handle is None or self.output_handle is None:
            raise ValueError("Handle, or both InputHandle and OutputHandle, are required")
        if self.filter is not None and (
            self.input_filter is not None or self.output_filter is not None
        ):
            raise ValueError("Filter cannot be combined with InputFilter/OutputFilter")
        if (self.high_mark is None) != (self.low_mark is None):
            raise ValueError("HighMark and LowMark parameters require each other")
        if self.high_mark is not None and self.low_mark is not None:
            if self.low_mark >= self.high_mark:
                raise ValueError(
                    f"LowMark ({self.low_mark}) must be below HighMark ({self.high_mark})"
                )
        elif self.high_event is not None or self.low_event is not None:
            raise ValueError("HighEvent/LowEvent require HighMark and LowMark")
        elif self.backpressure:
            raise ValueError("Backpressure requires HighMark and LowMark")
        return self


class _CommonParams:
    """ReadWrite's parameters in their common shape, checked without pydantic
    (see :func:`_common_params`); the attributes are ReadWriteParams'."""

    __slots__ = (
        "backpressure",
        "error_event",
        "filter",
        "flushed_event",
        "handle",
        "high_mark",
        "input_event",
        "input_timeout",
        "low_mark",
    )

    handle: Any
    filter: Filter[Any] | None
    input_event: str | None
    error_event: str | None
    flushed_event: str | None
    input_timeout: float | None
    high_mark: int | None
    low_mark: int | None
    backpressure: bool
    input_handle = output_handle = driver = input_filter = output_filter = None
    high_event = low_event = None
    auto_flush = False

    def __init__(self, values: dict[str, Any]) -> None:
        self.handle = values["handle"]
        self.filter = values.get("filter")
        self.input_event = values.get("input_event")
        self.error_event = values.get("error_event")
        self.flushed_event = values.get("flushed_event")
        self.input_timeout = values.get("input_timeout")
        self.high_mark = values.get("high_mark")
        self.low_mark = values.get("low_mark")
        self.backpressure = values.get("backpressure", False)


# Every spelling of the parameters of the common shape -> the field.
_COMMON_NAMES = {
    spelling: field
    for field in _CommonParams.__slots__
    for spelling in (field, "".join(part.title() for part in field.split("_")))
}
_EVENT_FIELDS = frozenset({"input_event", "error_event", "flushed_event"})
_MARK_FIELDS = frozenset({"high_mark", "low_mark"})


def _common_params(params: dict[str, Any]) -> _CommonParams | None:
    """The parameters of nearly every ReadWrite -- a socket as Handle, a
    Filter or none, event names -- when they are exactly that, else None.

    A wheel is built per connection: pydantic's validation costs it about
    6 us, and a freshly forked child about 15 copy-on-write page faults and
    0.2 ms more (the validators' objects are the parent's).  What this accepts,
    ReadWriteParams accepts too, with the same values; anything else (other
    parameters, other types, a parameter given in both spellings) goes to
    pydantic, which gives the errors.
    """
    values: dict[str, Any] = {}
    for key, value in params.items():
        field = _COMMON_NAMES.get(key)
        if field is None or field in values:
            return None
        if field in _EVENT_FIELDS:
            if value is not None and value.__class__ is not str:
                return None
        elif field == "handle":
            if not isinstance(value, socket.socket):
                return None
        elif field in _MARK_FIELDS:
            if value.__class__ is not int or value <= 0:
                return None
        elif field == "input_timeout":
            if value is not None and (
                value.__class__ not in (int, float) or not 0 < value < float("inf")
            ):
                return None
        elif field == "backpressure":
            if value.__class__ is not bool:
                return None
        elif value is not None and not isinstance(value, Filter):
            return None
        values[field] = value
    if "handle" not in values:
        return None
    high, low = values.get("high_mark"), values.get("low_mark")
    if (high is None) != (low is None) or (high is not None and low >= high):
        return None  # pydantic words the error
    if values.get("backpressure") and high is None:
        return None
    return _CommonParams(values)
