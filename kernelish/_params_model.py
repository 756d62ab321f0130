"""The pydantic side of named parameters: the base model and the validation
that words its errors in POE's CamelCase (see :mod:`kernelish._params`).

Imported only when a component gets parameters outside its common shape, or
when a program or a test uses a model itself: importing pydantic is most of
what a component's parameters cost a forking server.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import pydantic
from pydantic import ConfigDict
from pydantic.alias_generators import to_pascal

from ._params import ParameterError

__all__ = ["Params", "validate"]


class Params(pydantic.BaseModel):
    """Base model for a component's named parameters (POE's ``new(Name => value, ...)``).

    Fields are declared in snake_case; the CamelCase alias POE uses is generated, and both
    spellings are accepted.  Unknown names are refused, as POE::Driver::SysRW and most POE
    constructors do.
    """

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        arbitrary_types_allowed=True,
        alias_generator=to_pascal,
        # Built on the first validation, not at import: most programs never
        # validate most models (see kernelish._params).
        defer_build=True,
    )


P = TypeVar("P", bound=Params)


def _alias(model: type[Params], name: str) -> str:
    field = model.model_fields[name]
    return field.alias or to_pascal(name)


@functools.cache
def _known_names(model: type[Params]) -> dict[str, str]:
    """Every accepted spelling (snake_case and CamelCase) -> its CamelCase
    name; computed once per model, since a wheel is built per connection."""
    known: dict[str, str] = {}
    for name in model.model_fields:
        alias = _alias(model, name)
        known[name] = alias
        known[alias] = alias
    return known


def _describe_type(annotation: Any) -> str:
    """Render an annotation the way a user would write it (``int``, ``str | bytes | None``)."""
    if annotation is None or annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _describe_type(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(_describe_type(arg) for arg in typing.get_args(annotation))
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation)


# pydantic reports one error per union member; these types all mean "wrong type".
_TYPE_ERROR_SUFFIXES = ("_type", "_parsing", "is_instance_of", "union_tag_invalid")


def _describe_errors(model: type[Params], errors: list[Any]) -> tuple[list[str], list[str]]:
    """Turn pydantic error dicts into one phrase per offending field (in POE's CamelCase)."""
    by_alias: dict[str, str] = {}
    field_of: dict[str, str] = {}
    for name in model.model_fields:
        alias = _alias(model, name)
        by_alias[name] = alias
        by_alias[alias] = alias
        field_of[alias] = name

    phrases: list[str] = []
    names: list[str] = []
    seen: set[str] = set()
    for err in errors:
        loc = err.get("loc", ())
        field = by_alias.get(str(loc[0]), str(loc[0])) if loc else ""
        kind = str(err.get("type", ""))
        if kind == "missing":
            phrase = f"missing required parameter {field!r}"
        elif kind == "extra_forbidden":
            phrase = f"unknown parameter {field!r}"
        elif kind in ("value_error", "assertion_error") and "ctx" in err:
            # Raised by a model's own validator: its text is already user-facing.
            message = str(err["ctx"].get("error", err["msg"]))
            phrase = f"{field} {message}" if field else message
        elif kind.endswith(_TYPE_ERROR_SUFFIXES) and field:
            info = model.model_fields.get(field_of.get(field, ""))
            expected = _describe_type(info.annotation) if info is not None else "another type"
            phrase = f"{field} must be {expected} (got {err.get('input')!r})"
        else:
            msg = str(err.get("msg", "is invalid"))
            msg = (
                "must be " + msg[len("Input should be ") :]
                if msg.startswith("Input should be ")
                else msg
            )
            phrase = f"{field} {msg} (got {err.get('input')!r})" if field else msg
        # A union produces one error per member; report the field once.
        key = field if kind.endswith(_TYPE_ERROR_SUFFIXES) else phrase
        if key in seen:
            continue
        seen.add(key)
        phrases.append(phrase)
        if field and field not in names:
            names.append(field)
    return phrases, names


_defaults: dict[type[Params], Params] = {}


def validate(model: type[P], owner: str, kwargs: Mapping[str, Any]) -> P:
    """:func:`kernelish._params.parse_params`, with pydantic imported."""
    if not kwargs and model in _defaults:
        return _defaults[model]  # type: ignore[return-value]
    known = _known_names(model)
    unknown = [key for key in kwargs if key not in known]
    if unknown:
        shown = ", ".join(repr(key) for key in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise ParameterError(
            f"{owner}: unknown parameter{plural} {shown}", owner=owner, params=tuple(unknown)
        )

    # pydantic would silently keep one of the two spellings; POE has only one, so refuse.
    given: dict[str, str] = {}
    for key in kwargs:
        alias = known[key]
        if alias in given:
            raise ParameterError(
                f"{owner}: parameter {alias!r} given twice (as {given[alias]!r} and {key!r})",
                owner=owner,
                params=(alias,),
            )
        given[alias] = key

    try:
        params = model.model_validate(dict(kwargs))
    except pydantic.ValidationError as exc:
        phrases, names = _describe_errors(model, list(exc.errors()))
        raise ParameterError(
            f"{owner}: " + "; ".join(phrases), owner=owner, params=tuple(names)
        ) from None
    if not kwargs:
        # The defaults, validated once per model: ``Line()`` and ReadWrite's own
        # ``SysRW()`` are built for every connection.  Safe to share, since
        # nothing assigns to a parameter model after validation.
        _defaults[model] = params
    return params
