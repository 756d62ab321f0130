"""Named-parameter validation shared by wheels, filters and drivers.

POE constructors take a flat list of CamelCase named parameters (``BlockSize => 4096``) and
croak on unknown or malformed ones.  kernelish keeps the CamelCase names (so POE documentation
reads straight across) and also accepts the snake_case spelling Python code expects.

Discussion
----------
pydantic is the validator: each component declares its parameters as a pydantic model
(:class:`kernelish._params_model.Params`), and every error message comes from it.  But
pydantic costs a forking server dearly if it is paid for at import: ``import pydantic`` and
the core schemas of a dozen models made the master some 8 MB of anonymous memory and 100
mappings heavier -- memory every ``fork()`` copies the page tables of and every child
touches -- for parameters that are, nearly always, a socket, a filter and a few event names.
So the models live in modules of their own, imported the first time a component gets
parameters its *common shape* does not cover, and each component describes that shape in a
:class:`LazyParams`: per field a plain check (``str``, a positive ``int``, a socket...) that
accepts only values the model would accept unchanged, and the defaults.  What passes is
returned at once, as a namespace that reads like the model (attributes, ``model_fields_set``);
anything else -- another type, a value out of range, a parameter outside the shape, the same
parameter in both spellings -- goes to pydantic, which accepts it or words the error.  The
tests check every shape against its model (the same values, the same fields set), so the two
cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ._params_model import Params

__all__ = [
    "CommonParams",
    "LazyParams",
    "ParameterError",
    "callback",
    "camel",
    "exact",
    "instance_of",
    "parse_params",
    "positive_int",
]


class ParameterError(TypeError):
    """A constructor got a missing, unknown, duplicated or malformed named parameter.

    Port of the ``croak`` POE constructors raise for bad parameters (e.g. POE::Driver::SysRW's
    "BlockSize must be greater than 0").  It is a :class:`TypeError` because, like a bad keyword
    argument, it is a programming error at the call site.  ``owner`` is the component name and
    ``params`` the CamelCase names of the offending parameters (empty for cross-field errors).
    """

    def __init__(self, message: str, *, owner: str = "", params: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.owner = owner
        self.params = params


P = TypeVar("P", bound="Params")


def parse_params(model: type[P], owner: str, kwargs: Mapping[str, Any]) -> P:
    """Validate named parameters for ``owner`` against the pydantic ``model``.

    Port of the parameter checking in POE constructors (e.g. POE::Driver::SysRW::new).  Accepts
    each parameter by its CamelCase POE name or its snake_case field name, but not both at once.
    Raises :class:`ParameterError` with a one-line message naming the CamelCase parameter, e.g.
    ``"SysRW: BlockSize must be greater than 0 (got 0)"``.
    """
    from ._params_model import validate

    return validate(model, owner, kwargs)


#: A field's check in a common shape: True when the value is one the model
#: accepts as it is.
Check = Callable[[Any], bool]


def camel(field: str) -> str:
    """POE's CamelCase name of a snake_case field (pydantic's ``to_pascal``)."""
    return "".join(part[:1].upper() + part[1:] for part in field.split("_"))


class _Exact(frozenset[type]):
    """The check :func:`exact` makes: a set of classes, which
    :meth:`LazyParams.common` tests inline (no call per parameter)."""

    def __call__(self, value: Any) -> bool:
        return value.__class__ in self


def exact(*types: type | None) -> Check:
    """A value of exactly one of ``types`` (``None`` for None): no subclass,
    so that the model, whose lax mode converts some, returns it unchanged."""
    return _Exact(type(None) if t is None else t for t in types)


class _Callback:
    """The check :func:`callback` makes, which :meth:`LazyParams.common`
    tests inline (no call per parameter)."""

    __slots__ = ("none",)

    def __init__(self, none: bool) -> None:
        self.none = none

    def __call__(self, value: Any) -> bool:
        return callable(value) or (self.none and value is None)


def callback(*, none: bool = True) -> Check:
    """A callable (``Callable[..., Any]`` in the model), or None when ``none``."""
    return _Callback(none)


def instance_of(*types: type, none: bool = False) -> Check:
    """An instance of one of ``types`` (a socket, a Filter), or None when ``none``."""
    return lambda value: isinstance(value, types) or (none and value is None)


def positive_int(value: Any) -> bool:
    """An ``int`` (not a bool) above zero: ``Field(gt=0)``, strict or not."""
    return value.__class__ is int and value > 0


class CommonParams:
    """Parameters that passed a common shape: they read like the model they
    stand for -- every field an attribute (the defaults are the class's, the
    given values the instance's), and ``model_fields_set``."""

    #: The fields given (pydantic's name); none for the defaults.
    model_fields_set: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        given = vars(self).items()
        fields = ", ".join(f"{k}={v!r}" for k, v in given if k != "model_fields_set")
        return f"{type(self).__name__}({fields})"


class LazyParams:
    """A component's parameters: the common shape checked in plain Python,
    the rest by its pydantic model, imported on first use (see the module
    discussion).

    ``model`` names the model as ``"package.module:Class"``.  ``defaults``
    are the model's defaults of every field (``required`` fields have none);
    ``checks`` hold the fields of the common shape, ``consistent`` an optional
    cross-field rule, given the parameters (False: let pydantic decide).
    """

    __slots__ = (
        "_checks",
        "_consistent",
        "_defaults",
        "_empty",
        "_made",
        "_model",
        "_names",
        "_plans",
        "_required",
        "owner",
    )

    #: How many spellings of the parameters (which names, in which order) a
    #: component keeps the plan of; past it, each call works it out again.
    PLANS = 64

    #: Every LazyParams made, for the tests that hold each shape to its model.
    made: list[LazyParams] = []

    def __init__(
        self,
        owner: str,
        model: str,
        defaults: Mapping[str, Any] | None = None,
        checks: Mapping[str, Check] | None = None,
        *,
        required: tuple[str, ...] = (),
        consistent: Callable[[Any], bool] | None = None,
    ) -> None:
        self.owner = owner
        self._model = model
        self._defaults = dict(defaults or {})
        self._checks = dict(checks or {})
        self._consistent = consistent
        self._required = required
        #: Each accepted spelling -> (field, check).
        self._names = {
            spelling: (field, check)
            for field, check in self._checks.items()
            for spelling in (field, camel(field))
        }
        # ``Line()`` and ReadWrite's own ``SysRW()`` are built per connection:
        # their defaults are one shared namespace (nothing assigns to parameters).
        #: The class of this component's CommonParams: the defaults as class
        #: attributes, so that each call stores only what it was given.
        self._made: type[CommonParams] = type(
            f"{owner}CommonParams", (CommonParams,), {"__module__": __name__, **self._defaults}
        )
        # ``Line()`` and ReadWrite's own ``SysRW()`` are built per connection:
        # their defaults are one shared object (nothing assigns to parameters).
        # Without defaults there is no common shape: pydantic sees every call.
        self._empty = None if required or defaults is None else self._made()
        #: The names a call gave, in its order -> their fields, their checks
        #: and the set of fields; or None when those names cannot have the
        #: common shape (unknown, given twice, a required one missing).  A
        #: component is nearly always called with the same names: a program
        #: builds its wheels, filters and clients with the same few lines.
        self._plans: dict[tuple[str, ...], Any] = {}
        LazyParams.made.append(self)

    @property
    def model(self) -> type[Params]:
        """The pydantic model, imported now if it was not yet."""
        module, _, name = self._model.partition(":")
        found: type[Params] = getattr(__import__(module, fromlist=[name]), name)
        return found

    def fields(self) -> tuple[str, ...]:
        """The fields of the common shape."""
        return tuple(self._checks)

    def common(self, params: Mapping[str, Any]) -> Any:
        """The parameters as a CommonParams when they have the common shape, else None."""
        if not params:
            return self._empty
        names = tuple(params)
        plan = self._plans.get(names, False)
        if plan is False:
            plan = self._plan(names)
        if plan is None:
            return None
        fields, checks, given = plan
        values = params.values()
        at = 0
        for value in values:
            check = checks[at]
            at += 1  # noqa: SIM113 - faster than enumerate() or zip() here
            kind = check.__class__
            if kind is _Exact:
                if value.__class__ not in check:
                    return None
            elif kind is _Callback:
                if not callable(value) and (value is not None or not check.none):
                    return None
            elif not check(value):
                return None
        found = self._made()
        found.__dict__ = dict(zip(fields, values))  # noqa: B905 - the plan's length
        if self._consistent is not None and not self._consistent(found):
            return None
        found.model_fields_set = given
        return found

    def _plan(self, names: tuple[str, ...]) -> Any:
        """The plan of :meth:`common` for these names (kept, up to :attr:`PLANS`)."""
        fields: list[str] = []
        checks: list[Check] = []
        plan: Any = None
        for name in names:
            entry = self._names.get(name)
            if entry is None or entry[0] in fields:
                break
            fields.append(entry[0])
            checks.append(entry[1])
        else:
            if all(field in fields for field in self._required):
                plan = (tuple(fields), tuple(checks), frozenset(fields))
        if len(self._plans) < self.PLANS:
            self._plans[names] = plan
        return plan

    def parse(self, params: Mapping[str, Any], owner: str | None = None) -> Any:
        """The parameters, from the common shape or else from pydantic (which
        raises :class:`ParameterError` for bad ones, naming ``owner``)."""
        found = self.common(params)
        if found is not None:
            return found
        return parse_params(self.model, owner or self.owner, params)
