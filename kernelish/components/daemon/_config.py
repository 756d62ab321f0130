"""The parameters of the Daemon component: POE::Component::Daemon's ``spawn(%params)``.

The Perl module blessed its parameter hash as-is and found mistakes late (a typo'd key was
silently ignored, ``max_spare < min_spare`` confessed from inside ``_start``).  Here every
parameter is checked when the configuration is built, and each refusal names the offending
parameter.

Discussion
----------
:class:`~._config_model.DaemonConfig`, a pydantic model, is the validator and words every
refusal.  But importing pydantic and building the model's core schema is most of what the
Daemon cost its master: some 7 MB of anonymous memory and 90 mappings, which every ``fork()``
copies the page tables of and every child inherits -- for a configuration that is, nearly
always, a few counts, flags and paths.  So, as the wheels' parameters do
(:mod:`kernelish._params`), :func:`make_config` first tries the *common shape*: every
parameter a known one, of exactly the type the model keeps unchanged (a bool or 0/1 for the
flags, an ``int`` for the counts, a ``float`` for the seconds, a ``str`` or ``Path`` for the
files, no ``user``/``group``), checked by the same rules (:func:`_check_file_path`, the
control socket's length, :func:`_resolve_spares`).  What passes becomes a
:class:`CommonDaemonConfig`, which reads like the model; anything else -- another type, a
value out of range, an unknown parameter, a rule refused -- goes to the model, imported then,
which accepts it or words the error.  ``tests/test_daemon_config.py`` holds the two to the same
values.
"""

from __future__ import annotations

import math
import os
import pwd
from pathlib import Path, PosixPath
from typing import TYPE_CHECKING, Any, Protocol

from .control import SOCKET_PATH_MAX

if TYPE_CHECKING:
    import grp

__all__ = ["CommonDaemonConfig", "DaemonSettings", "default_min_max", "make_config"]


def _perl_bool(value: Any) -> Any:
    """Let the ints 0 and 1 through as booleans: Perl callers write ``detach => 1``."""
    if type(value) is int and value in (0, 1):
        return bool(value)
    return value


def _check_file_path(path: Path | None) -> Path | None:
    """Make ``path`` absolute and refuse it unless it can be created or appended to."""
    if path is None:
        return None
    path = path.absolute()
    if not path.parent.is_dir():
        raise ValueError(f"directory {str(path.parent)!r} does not exist or is not a directory")
    if path.exists() and not path.is_file():
        raise ValueError(f"{str(path)!r} exists and is not a regular file")
    return path


def _lookup_user(user: str | int) -> pwd.struct_passwd:
    """Find a passwd entry by name, or by uid for ints and all-digit strings."""
    try:
        if isinstance(user, str):
            try:
                return pwd.getpwnam(user)
            except KeyError:
                if not user.isdigit():
                    raise
                return pwd.getpwuid(int(user))
        return pwd.getpwuid(user)
    except (KeyError, OverflowError):
        raise ValueError(f"unknown user {user!r}") from None


def _lookup_group(group: str | int) -> grp.struct_group:
    """Find a group entry by name, or by gid for ints and all-digit strings."""
    import grp  # here: only a Daemon given a group looks one up

    try:
        if isinstance(group, str):
            try:
                return grp.getgrnam(group)
            except KeyError:
                if not group.isdigit():
                    raise
                return grp.getgrgid(int(group))
        return grp.getgrgid(group)
    except (KeyError, OverflowError):
        raise ValueError(f"unknown group {group!r}") from None


def _resolve_spares(
    start_children: int, max_children: int, min_spare: int, max_spare: int
) -> tuple[int, int, int]:
    """POE::Component::Daemon's ``default_min_max``, exactly; returns (max_children, min, max).

    Perl's ``||=`` treats 0 as unset, so the arguments are 0 for "not given".  One addition:
    Perl only checked ``max_spare < min_spare`` when ``max_children`` was given; it is checked
    in both branches here, because ``start_children=10, max_spare=3`` (min_spare defaults to
    10) is the same madness.
    """
    if max_children:
        if max_spare:
            min_spare = min_spare or int(max_spare / 2)
        else:
            min_spare = min_spare or int(max_children * 0.2)
            max_spare = max_spare or int(max_children * 0.8)
        min_spare = min_spare or 1
        max_spare = max_spare or 2
    else:
        # Only reached with start_children set (the caller checks is_prefork).
        min_spare = min_spare or start_children
        max_spare = max_spare or 2 * min_spare
        max_children = start_children + max_spare
    if max_spare < min_spare:
        raise ValueError(
            f"max_spare ({max_spare}) can't be smaller than min_spare ({min_spare}); "
            "madness follows"
        )
    return max_children, min_spare, max_spare


def _check_socket_fits(value: Path | None) -> Path | None:
    """The control socket beside a pidfile must fit in sun_path, or `kernelish
    stop` could never prove who the daemon is."""
    if value is not None and len(os.fsencode(value)) + 5 > SOCKET_PATH_MAX:
        raise ValueError(
            f"the control socket {str(value) + '.sock'!r} would be longer than "
            f"{SOCKET_PATH_MAX} bytes, the most a UNIX socket path may be"
        )
    return value


class DaemonSettings(Protocol):
    """What the Daemon reads of its configuration: a
    :class:`~._config_model.DaemonConfig` or a :class:`CommonDaemonConfig`."""

    alias: str
    detach: bool
    logfile: Path | None
    verbose: bool
    max_children: int | None
    start_children: int | None
    min_spare: int | None
    max_spare: int | None
    requests: int | None
    babysit: float | None
    user: str | int | None
    group: str | int | None
    rogue_cpu: float
    shutdown_timeout: float
    pidfile: Path | None
    notify: bool | None

    @property
    def uid(self) -> int | None: ...

    @property
    def gid(self) -> int | None: ...

    def is_prefork(self) -> bool: ...

    def is_fork(self) -> bool: ...


#: Every field of the model with its default, in the model's order.
DEFAULTS: dict[str, Any] = {
    "alias": "Daemon",
    "detach": False,
    "logfile": None,
    "verbose": False,
    "max_children": None,
    "start_children": None,
    "min_spare": None,
    "max_spare": None,
    "requests": None,
    "babysit": None,
    "user": None,
    "group": None,
    "rogue_cpu": 600.0,
    "shutdown_timeout": 10.0,
    "pidfile": None,
    "notify": None,
}


class CommonDaemonConfig:
    """A configuration of the common shape, checked without pydantic: it reads
    like :class:`~._config_model.DaemonConfig` (every field an attribute,
    ``uid``/``gid``, ``is_prefork``/``is_fork``, ``model_dump``)."""

    alias: str = "Daemon"
    detach: bool = False
    logfile: Path | None = None
    verbose: bool = False
    max_children: int | None = None
    start_children: int | None = None
    min_spare: int | None = None
    max_spare: int | None = None
    requests: int | None = None
    babysit: float | None = None
    user: str | int | None = None
    group: str | int | None = None
    rogue_cpu: float = 600.0
    shutdown_timeout: float = 10.0
    pidfile: Path | None = None
    notify: bool | None = None

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
        #: The fields given (pydantic's name).
        self.model_fields_set = frozenset(values)

    @property
    def uid(self) -> int | None:
        """The common shape has no ``user``: None."""
        return None

    @property
    def gid(self) -> int | None:
        """The common shape has no ``group``: None."""
        return None

    def is_prefork(self) -> bool:
        """POE::Component::Daemon ``is_prefork``: ``start_children`` is non-zero."""
        return bool(self.start_children)

    def is_fork(self) -> bool:
        """POE::Component::Daemon ``is_fork``: ``max_children`` non-zero and not pre-forking."""
        return bool(self.max_children) and not self.is_prefork()

    def model_dump(self) -> dict[str, Any]:
        """Every field and its value, as the model's ``model_dump()``."""
        return {name: getattr(self, name) for name in DEFAULTS}

    def default_min_max(self) -> DaemonSettings:
        """A copy with the seed's ``default_min_max`` applied; see :func:`default_min_max`."""
        return default_min_max(self)

    def __repr__(self) -> str:
        fields = " ".join(f"{k}={v!r}" for k, v in self.model_dump().items())
        return f"{type(self).__name__}({fields})"


def _flag(value: Any) -> bool | None:
    """A flag the model keeps as this bool (a bool, or the ints 0 and 1), else None."""
    if value.__class__ is bool:
        return value
    if value.__class__ is int and value in (0, 1):
        return bool(value)
    return None


def _count(value: Any, least: int) -> bool:
    return value is None or (value.__class__ is int and value >= least)


def _seconds(value: Any) -> bool:
    return value.__class__ is float and value > 0 and not math.isinf(value)


def _path(value: Any) -> Path | None:
    """A non-empty ``str`` or a ``PosixPath`` as the Path the model makes of it, else None."""
    if value.__class__ is PosixPath:
        return value
    if value.__class__ is str and value and "\0" not in value:
        return Path(value)
    return None


_SPARES = frozenset({"max_children", "min_spare", "max_spare"})


def _common(params: dict[str, Any]) -> CommonDaemonConfig | None:
    """``params`` as a :class:`CommonDaemonConfig` if they have the common shape
    and pass its rules, else None (the model decides)."""
    given: dict[str, Any] = {}
    for name, value in params.items():
        if name not in DEFAULTS:
            return None
        if name == "alias":
            if value.__class__ is not str or not value:
                return None
        elif name in ("detach", "verbose", "notify"):
            if value is not None or name != "notify":
                value = _flag(value)
                if value is None:
                    return None
        elif name in ("max_children", "start_children", "min_spare", "max_spare"):
            if not _count(value, 0):
                return None
        elif name == "requests":
            if not _count(value, 1):
                return None
        elif name in ("rogue_cpu", "shutdown_timeout"):
            if not _seconds(value):
                return None
        elif name == "babysit":
            if value is not None and not _seconds(value):
                return None
        elif name in ("logfile", "pidfile"):
            if value is not None:
                path = _path(value)
                if path is None:
                    return None
                try:
                    value = _check_file_path(path)
                    if name == "pidfile":
                        _check_socket_fits(value)
                except ValueError:
                    return None
        elif value is not None:  # user, group: looked up by the model
            return None
        given[name] = value
    config = CommonDaemonConfig(given)
    min_spare, max_spare = config.min_spare, config.max_spare
    if max_spare and min_spare and max_spare < min_spare:
        return None
    if config.is_prefork():
        try:
            spares = _resolve_spares(
                config.start_children or 0,
                config.max_children or 0,
                min_spare or 0,
                max_spare or 0,
            )
        except ValueError:
            return None
        config.max_children, config.min_spare, config.max_spare = spares
        # As the model's: fields assigned by its validator count as set.
        config.model_fields_set = config.model_fields_set | _SPARES
    return config


def make_config(params: dict[str, Any]) -> DaemonSettings:
    """The Daemon's configuration from ``spawn``'s parameters: the common shape
    without pydantic, anything else through the model (which raises
    :class:`pydantic.ValidationError` naming the field)."""
    found = _common(params)
    if found is not None:
        return found
    from ._config_model import DaemonConfig

    return DaemonConfig(**params)


def default_min_max(cfg: DaemonSettings) -> DaemonSettings:
    """Port of POE::Component::Daemon ``default_min_max``: return ``cfg`` re-resolved.

    A configuration is already resolved when built, and the rules are idempotent, so
    this only matters after fields were assigned by hand: it validates the current values
    again and returns a new config (``cfg`` is not changed).  The rules, when pre-forking:

    * with ``max_children``: if ``max_spare`` is set, ``min_spare ||= int(max_spare / 2)``;
      otherwise ``min_spare ||= int(max_children * 0.2)`` and
      ``max_spare ||= int(max_children * 0.8)``; then ``min_spare ||= 1``,
      ``max_spare ||= 2``;
    * without it: ``min_spare ||= start_children``, ``max_spare ||= 2 * min_spare`` and
      ``max_children = start_children + max_spare``;
    * ``max_spare < min_spare`` is refused ("madness follows").

    ``||=`` is Perl's: 0 counts as unset.
    """
    values = {name: getattr(cfg, name) for name in DEFAULTS}
    if isinstance(cfg, CommonDaemonConfig):
        return make_config(values)
    return type(cfg).model_validate(values)  # type: ignore[attr-defined, no-any-return]
