"""HTTPClient's constructor parameters: the pydantic model, imported the first
time an HTTPClient filter is built (see :mod:`kernelish._params`)."""

from __future__ import annotations

from pydantic import Field

from kernelish._params_model import Params

__all__ = ["HTTPClientParams"]


class HTTPClientParams(Params):
    """Constructor parameters of :class:`HTTPClient`."""

    max_content: int | None = Field(None, gt=0, strict=True)
    max_header_size: int = Field(64 * 1024, gt=0, strict=True)
    max_fields: int = Field(100, gt=0, strict=True)
    streaming: bool = False
    proxy: bool = False
