"""What ServerTCP and ClientTCP share: the filter forms, the user's extra
states, the session ID they return, and calling a callback with other
arguments than the handler got.

POE's two components are each one ``new`` full of closures over their
parameters.  Here the parameters are validated once (pydantic, through
:mod:`kernelish._params`) and the callbacks are handlers -- called with the
one argument ``_`` -- so that what a Perl callback reads from ``@_`` a
Python one reads from ``_`` at the same positions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kernelish import HandlerArgs, Session, current_kernel
from kernelish._params import ParameterError
from kernelish.filters import Filter, Line

__all__ = [
    "FilterFactory",
    "SessionID",
    "check_states",
    "filter_factory",
    "session_options",
    "with_args",
]

#: The positions before ARG0 (OBJECT .. CALLER_STATE) in a handler's ``_``.
_ARG0 = 10

FilterFactory = Callable[[], Filter[Any]]


def filter_factory(owner: str, name: str, spec: Any) -> FilterFactory | None:
    """A maker of fresh filters for each connection from POE's filter forms:
    a filter object (each connection gets a ``clone()``), a filter class, or
    ``(FilterClass, {params})``.  One filter is made here, so a wrong form
    or parameter is refused at construction, naming ``name``."""
    if spec is None:
        return None
    if isinstance(spec, Filter):
        return spec.clone
    if isinstance(spec, type) and issubclass(spec, Filter):
        make: FilterFactory = spec
    elif (
        isinstance(spec, tuple | list)
        and len(spec) == 2
        and isinstance(spec[0], type)
        and issubclass(spec[0], Filter)
        and isinstance(spec[1], Mapping)
    ):
        cls, params = spec[0], dict(spec[1])

        def make() -> Filter[Any]:
            return cls(**params)

    else:
        raise ParameterError(
            f"{owner}: {name} must be a filter object, a filter class or "
            f"(FilterClass, {{params}}) (got {spec!r})",
            owner=owner,
            params=(name,),
        )
    try:
        make()
    except ParameterError as exc:
        raise ParameterError(f"{owner}: {name}: {exc}", owner=owner, params=(name,)) from None
    return make


def default_filter() -> Filter[Any]:
    """POE's default filter for both components: a fresh Line filter."""
    return Line()


def check_states(owner: str, reserved: Callable[[str], bool], params: Mapping[str, Any]) -> None:
    """Refuse user states that would replace the component's own (POE
    refuses them only under ``ASSERT_USAGE``)."""
    inline = params.get("InlineStates") or {}
    names = [str(n) for n in inline]
    for pname in ("ObjectStates", "PackageStates"):
        for entry in params.get(pname) or []:
            if not (isinstance(entry, tuple | list) and len(entry) == 2):
                raise ParameterError(
                    f"{owner}: {pname} must be a list of (object, [events]) or "
                    f"(object, {{event: method}}) pairs (got {entry!r})",
                    owner=owner,
                    params=(pname,),
                )
            events = entry[1]
            names += [str(e) for e in (events if isinstance(events, Iterable) else [])]
    bad = sorted({n for n in names if reserved(n)})
    if bad:
        raise ParameterError(
            f"{owner}: these states are the component's own and may not be replaced: "
            + ", ".join(bad),
            owner=owner,
            params=("InlineStates",),
        )


def session_options(owner: str, session_params: Any) -> dict[str, Any]:
    """``SessionParams``: extra arguments for ``Session.create``.  POE takes a
    flat list (``[options => {...}]``) and asks for nothing but ``options``;
    a dict or that list is taken here, and anything but ``options`` is
    refused (the component supplies the states, heap and args)."""
    if session_params is None:
        return {}
    if isinstance(session_params, Mapping):
        pairs = dict(session_params)
    elif isinstance(session_params, list | tuple) and len(session_params) % 2 == 0:
        pairs = dict(zip(session_params[::2], session_params[1::2], strict=True))
    else:
        raise ParameterError(
            f"{owner}: SessionParams must be a dict or a list of name, value pairs",
            owner=owner,
            params=("SessionParams",),
        )
    unknown = sorted(str(k) for k in pairs if k != "options")
    if unknown:
        raise ParameterError(
            f"{owner}: SessionParams may only give 'options' (got {', '.join(unknown)})",
            owner=owner,
            params=("SessionParams",),
        )
    options = pairs.get("options") or {}
    if not isinstance(options, Mapping):
        raise ParameterError(
            f"{owner}: SessionParams 'options' must be a dict",
            owner=owner,
            params=("SessionParams",),
        )
    return {"options": dict(options)}


def with_args(_: HandlerArgs, args: Iterable[Any]) -> HandlerArgs:
    """``_`` with other event arguments (POE's ``splice(@_, ARG0, ...)`` or
    ``@_[ARG0, ARG1, ARG2] = (...)`` before calling a callback)."""
    return HandlerArgs.of((*tuple(_)[:_ARG0], *args))


class SessionID(int):
    """What POE's ``new`` returns: the ID of the component's session -- an
    ``int`` (``kernel.post(server_id, 'shutdown')`` works as in Perl), with
    a few attributes for code written fresh in Python."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} session {int(self)}>"

    __str__ = int.__repr__

    @property
    def ID(self) -> int:
        """The session's ID, a plain int."""
        return int(self)

    @property
    def session(self) -> Session | None:
        """The component's session while it lives, else None."""
        found = current_kernel().ID_id_to_session(int(self))
        return found if isinstance(found, Session) else None
