"""HTTPD's constructor parameters: the pydantic model, imported the first time
an HTTPD filter is built (see :mod:`kernelish._params`)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from kernelish._params_model import Params
from kernelish.filters._line import DEFAULT_MAX_BUFFER

__all__ = ["HTTPDParams"]


class HTTPDParams(Params):
    """Constructor parameters of :class:`HTTPD` (POE::Filter::HTTPD::new, plus limits)."""

    max_content: int = Field(1024 * 1024, gt=0, strict=True)
    max_buffer: int = Field(DEFAULT_MAX_BUFFER, gt=0, strict=True)
    streaming: bool = False
    max_request_line: int = Field(8190, gt=0, strict=True)
    max_field_size: int = Field(8190, gt=0, strict=True)
    max_fields: int = Field(100, gt=0, strict=True)
    max_header_size: int = Field(64 * 1024, gt=0, strict=True)
    server: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.max_header_size < self.max_field_size:
            raise ValueError(
                f"MaxHeaderSize ({self.max_header_size}) must be at least "
                f"MaxFieldSize ({self.max_field_size})"
            )
        return self
