"""kernelish._params: POE-style named parameters validated with pydantic."""

from __future__ import annotations

from typing import Any, Self

import pytest
from pydantic import Field, model_validator

from kernelish._params import ParameterError, parse_params
from kernelish._params_model import Params


class DemoParams(Params):
    input_handle: object
    block_size: int = Field(10, gt=0)
    filter_name: str = "line"
    max_length: int | None = None


class ConflictParams(Params):
    literal: str | None = None
    input_literal: str | None = None

    @model_validator(mode="after")
    def _exclusive(self) -> Self:
        if self.literal is not None and self.input_literal is not None:
            raise ValueError("Literal cannot be combined with InputLiteral")
        return self


def parse(**kwargs: Any) -> DemoParams:
    return parse_params(DemoParams, "Demo", kwargs)


def error(**kwargs: Any) -> ParameterError:
    with pytest.raises(ParameterError) as info:
        parse(**kwargs)
    return info.value


@pytest.mark.parametrize(
    "kwargs",
    [
        {"InputHandle": 3, "BlockSize": 5, "FilterName": "x"},
        {"input_handle": 3, "block_size": 5, "filter_name": "x"},
        {"InputHandle": 3, "block_size": 5, "FilterName": "x"},
    ],
)
def test_camel_and_snake_case_both_accepted(kwargs: dict[str, Any]) -> None:
    params = parse(**kwargs)
    assert (params.input_handle, params.block_size, params.filter_name) == (3, 5, "x")


def test_defaults_apply() -> None:
    params = parse(InputHandle=None)
    assert (params.block_size, params.filter_name, params.max_length) == (10, "line", None)


def test_unknown_parameter_is_named() -> None:
    exc = error(InputHandle=1, BlockSiz=5)
    assert str(exc) == "Demo: unknown parameter 'BlockSiz'"
    assert exc.owner == "Demo"
    assert exc.params == ("BlockSiz",)


def test_several_unknown_parameters() -> None:
    assert str(error(InputHandle=1, Foo=1, bar=2)) == "Demo: unknown parameters 'Foo', 'bar'"


def test_missing_required_parameter() -> None:
    assert str(error(BlockSize=3)) == "Demo: missing required parameter 'InputHandle'"


def test_wrong_type_names_the_camel_case_field() -> None:
    assert str(error(InputHandle=1, filter_name=3)) == "Demo: FilterName must be str (got 3)"
    assert str(error(InputHandle=1, MaxLength="big")) == (
        "Demo: MaxLength must be int | None (got 'big')"
    )


def test_constraint_violation_names_field_and_value() -> None:
    exc = error(InputHandle=1, block_size=0)
    assert str(exc) == "Demo: BlockSize must be greater than 0 (got 0)"
    assert exc.params == ("BlockSize",)


def test_same_parameter_twice_is_refused() -> None:
    exc = error(InputHandle=1, BlockSize=1, block_size=2)
    assert str(exc) == "Demo: parameter 'BlockSize' given twice (as 'BlockSize' and 'block_size')"


def test_several_errors_fit_on_one_line() -> None:
    exc = error(BlockSize=-1, FilterName=3)
    message = str(exc)
    assert "\n" not in message
    assert message.startswith("Demo: ")
    for name in ("BlockSize", "FilterName", "InputHandle"):
        assert name in message
    assert set(exc.params) == {"BlockSize", "FilterName", "InputHandle"}


def test_model_validator_message_is_kept() -> None:
    with pytest.raises(ParameterError) as info:
        parse_params(ConflictParams, "Line", {"Literal": "x", "input_literal": "y"})
    assert str(info.value) == "Line: Literal cannot be combined with InputLiteral"


def test_parameter_error_is_a_type_error() -> None:
    assert issubclass(ParameterError, TypeError)
