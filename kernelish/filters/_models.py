"""The filters' constructor parameters: the pydantic models, imported the first
time a filter gets parameters outside its common shape (see
:mod:`kernelish._params`).  The checks they share with the common shapes are
plain functions of the filters' modules."""

from __future__ import annotations

import re
from typing import Any, Self

from pydantic import Field, field_validator, model_validator

from kernelish._params_model import Params
from kernelish.filters._block import DEFAULT_BLOCK_MAX_LENGTH, Decoder, Encoder
from kernelish.filters._code import check_callable
from kernelish.filters._line import (
    DEFAULT_ENCODING,
    DEFAULT_MAX_BUFFER,
    DEFAULT_MAX_LENGTH,
    codec_problem,
)
from kernelish.filters._reference import Dumps, Loads, resolve_serializer
from kernelish.filters._stackable import is_filter

__all__ = [
    "BlockParams",
    "CodeParams",
    "LineParams",
    "ModifyParams",
    "RecordBlockParams",
    "ReferenceParams",
    "StackableParams",
    "StreamParams",
]


class LineParams(Params):
    """Constructor parameters of :class:`~kernelish.filters.Line` (POE::Filter::Line::new,
    plus ``Encoding``)."""

    literal: str | bytes | None = None
    input_literal: str | bytes | None = None
    input_regexp: str | bytes | re.Pattern[str] | re.Pattern[bytes] | None = None
    output_literal: str | bytes | None = None
    max_length: int = Field(DEFAULT_MAX_LENGTH, gt=0, strict=True)
    max_buffer: int = Field(DEFAULT_MAX_BUFFER, gt=0, strict=True)
    encoding: str | None = DEFAULT_ENCODING

    @field_validator("encoding")
    @classmethod
    def _known_ascii_codec(cls, value: str | None) -> str | None:
        if value is not None:
            problem = codec_problem(value)
            if problem is not None:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _compatible_options(self) -> Self:
        given = self.model_fields_set
        if self.literal is not None:
            if not self.literal:
                raise ValueError("a defined Literal must have a nonzero length")
            if (
                "input_literal" in given
                or self.input_regexp is not None
                or self.output_literal is not None
            ):
                raise ValueError("Literal cannot be combined with any other terminator parameter")
        if "input_literal" in given and self.input_regexp is not None:
            raise ValueError("cannot have both InputLiteral and InputRegexp")
        if self.max_buffer < self.max_length:
            raise ValueError(
                f"MaxBuffer ({self.max_buffer}) must be at least MaxLength ({self.max_length})"
            )
        return self


class BlockParams(Params):
    """Constructor parameters of :class:`Block` (POE::Filter::Block::new)."""

    block_size: int | None = Field(None, gt=0, strict=True)
    length_codec: Any = None
    max_length: int = Field(DEFAULT_BLOCK_MAX_LENGTH, gt=0, strict=True)
    max_buffer: int = Field(DEFAULT_MAX_BUFFER, gt=0, strict=True)

    @field_validator("length_codec")
    @classmethod
    def _codec_pair(cls, value: Any) -> tuple[Encoder, Decoder] | None:
        if value is None:
            return None
        if not isinstance(value, tuple | list):
            raise ValueError(f"must be an (encoder, decoder) pair (got {value!r})")
        if len(value) != 2:
            raise ValueError(f"must contain two items, an encoder and a decoder (got {len(value)})")
        encoder, decoder = value
        if not callable(encoder):
            raise ValueError(f"encoder must be callable (got {encoder!r})")
        if not callable(decoder):
            raise ValueError(f"decoder must be callable (got {decoder!r})")
        return encoder, decoder

    @model_validator(mode="after")
    def _compatible(self) -> Self:
        given = self.model_fields_set
        if self.block_size is not None:
            # POE: "Can't use both LengthCodec and BlockSize at the same time" (and its check
            # of the misspelt "LengthCode" is not copied).
            if self.length_codec is not None:
                raise ValueError("cannot combine LengthCodec and BlockSize")
            if "max_length" in given:
                raise ValueError("cannot combine MaxLength and BlockSize")
            if self.block_size > self.max_buffer:
                raise ValueError(
                    f"BlockSize ({self.block_size}) must not exceed MaxBuffer ({self.max_buffer})"
                )
            return self
        header = len(str(self.max_length)) + 1
        if self.max_buffer < self.max_length + header:
            raise ValueError(
                f"MaxBuffer ({self.max_buffer}) is not large enough for MaxLength blocks: it "
                f"must be at least MaxLength + {header} ({self.max_length + header})"
            )
        return self


class ModifyParams(Params):
    """Parameters of ``modify`` (POE::Filter::Map::modify and ::Grep::modify)."""

    code: Any = None
    get: Any = None
    put: Any = None

    _callables = field_validator("code", "get", "put")(check_callable)


class CodeParams(ModifyParams):
    """Constructor parameters of :class:`Map` and :class:`Grep`: ``Code``, or ``Get`` and
    ``Put`` (POE::Filter::Map::new, POE::Filter::Grep::new)."""

    @model_validator(mode="after")
    def _code_or_get_and_put(self) -> Self:
        if self.code is not None:
            # POE silently prefers Code; two answers to one question is a mistake.
            if self.get is not None or self.put is not None:
                raise ValueError("Code cannot be combined with Get or Put")
        elif self.get is None or self.put is None:
            raise ValueError("requires a Code or both Get and Put parameters")
        return self


class RecordBlockParams(Params):
    """Constructor parameters of :class:`RecordBlock` (POE::Filter::RecordBlock::new)."""

    block_size: int = Field(gt=0, strict=True)
    check_put: bool = False


class ReferenceParams(Params):
    """Constructor parameters of :class:`Reference` (POE::Filter::Reference::new)."""

    serializer: Any = Field(None, validate_default=True)
    compression: bool = False
    no_fatals: bool = False
    max_buffer: int = Field(DEFAULT_MAX_BUFFER, gt=0, strict=True)

    @field_validator("serializer")
    @classmethod
    def _serializer(cls, value: Any) -> tuple[Dumps, Loads]:
        return resolve_serializer(value)


class StackableParams(Params):
    """Constructor parameters of :class:`Stackable` (POE::Filter::Stackable::new)."""

    filters: list[Any] = []

    @field_validator("filters", mode="before")
    @classmethod
    def _filters(cls, value: Any) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            raise ValueError(f"must be a list of filters (got {type(value).__name__})")
        for index, item in enumerate(value):
            if not is_filter(item):
                raise ValueError(f"[{index}] is not a filter (got {item!r})")
        return list(value)


class StreamParams(Params):
    """Constructor parameters of :class:`Stream` (POE::Filter::Stream takes none)."""
