"""ReadWrite's constructor parameters: the pydantic model, imported the first
time a ReadWrite gets parameters outside its common shape (a socket, a
filter, event names: :data:`kernelish.wheels._readwrite._PARAMS`; see
:mod:`kernelish._params`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from .._params_model import Params
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
