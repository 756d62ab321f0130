"""Validated parameters of the Daemon component: POE::Component::Daemon's ``spawn(%params)``.

The Perl module blessed its parameter hash as-is and found mistakes late (a typo'd key was
silently ignored, ``max_spare < min_spare`` confessed from inside ``_start``).  Here every
parameter is checked when the :class:`DaemonConfig` is built, and each refusal is a
:class:`pydantic.ValidationError` whose message names the offending parameter.
"""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic import BeforeValidator, ConfigDict, Field, Strict, field_validator, model_validator

from .control import SOCKET_PATH_MAX

__all__ = ["DaemonConfig", "default_min_max"]


def _perl_bool(value: Any) -> Any:
    """Let the ints 0 and 1 through as booleans: Perl callers write ``detach => 1``."""
    if type(value) is int and value in (0, 1):
        return bool(value)
    return value


# Strict types: Perl would happily take '3' for 3, but in Python a string or a bool where a
# count belongs is nearly always a bug at the call site, so it is refused rather than coerced.
_PerlBool = Annotated[bool, Strict(), BeforeValidator(_perl_bool)]
_Count = Annotated[int, Strict(), Field(ge=0)]
_Seconds = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
_Id = Annotated[str, Strict()] | Annotated[int, Strict(), Field(ge=0)]


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


class DaemonConfig(pydantic.BaseModel):
    """The parameters of POE::Component::Daemon's ``spawn`` / ``new``, validated.

    Fields keep the Perl names.  ``alias``, ``detach``, ``logfile``, ``verbose``,
    ``max_children``, ``start_children``, ``min_spare``, ``max_spare``, ``requests`` and
    ``babysit`` are the seed's; ``user``/``group`` are the privileges ``drop_privs`` drops to
    (looked up now; see :attr:`uid` / :attr:`gid`); ``rogue_cpu``, ``shutdown_timeout`` and
    ``pidfile`` are kernelish additions.  In pre-forking mode the spare/children counts are
    resolved by the seed's ``default_min_max`` rules at construction, so the model always
    holds the numbers the Daemon will use.
    """

    model_config = ConfigDict(extra="forbid")

    alias: Annotated[str, Strict(), Field(min_length=1)] = "Daemon"
    """POE session alias (Perl's default was derived from the package name, 'Daemon')."""
    detach: _PerlBool = False
    """Fork twice and ``setsid`` to leave the terminal."""
    logfile: Path | None = None
    """STDOUT/STDERR go here; reopened on HUP.  Made absolute; its directory must exist."""
    verbose: _PerlBool = False
    """Report babysitting and process creation on STDERR."""
    max_children: _Count | None = None
    """Most children at once; alone it selects the post-forking model."""
    start_children: _Count | None = None
    """Children forked at startup; non-zero selects the pre-forking model."""
    min_spare: _Count | None = None
    """Pre-forking: fork more children when fewer than this many are waiting."""
    max_spare: _Count | None = None
    """Pre-forking: ask waiting children beyond this many to exit."""
    requests: Annotated[int, Strict(), Field(ge=1)] | None = None
    """Requests a child handles before it exits (Perl's default was 1)."""
    babysit: _Seconds | None = None
    """Seconds between babysitting rounds (rogue and vanished child checks)."""
    user: _Id | None = None
    """User (name or uid) to drop privileges to; must exist."""
    group: _Id | None = None
    """Group (name or gid) to drop privileges to; must exist.  Defaults to the user's group."""
    rogue_cpu: _Seconds = 600.0
    """CPU seconds after which a busy child is a rogue (the seed's 10 minutes)."""
    shutdown_timeout: _Seconds = 10.0
    """Seconds children get to obey TERM before they are sent KILL."""
    pidfile: Path | None = None
    """Where to write the daemon's pid.  Made absolute; its directory must exist.
    Written after detaching and locked (``flock``) for the daemon's life; a control
    socket ``<pidfile>.sock`` (mode 0600) serves ``kernelish status|peek|stop``."""
    notify: _PerlBool | None = None
    """systemd ``sd_notify`` (READY/STATUS/RELOADING/STOPPING/WATCHDOG): None = when
    ``NOTIFY_SOCKET`` is set, False = never, True = always (warns if unset)."""

    _uid: int | None = pydantic.PrivateAttr(default=None)
    _gid: int | None = pydantic.PrivateAttr(default=None)

    @field_validator("logfile", "pidfile")
    @classmethod
    def _file_path(cls, value: Path | None) -> Path | None:
        return _check_file_path(value)

    @field_validator("pidfile")
    @classmethod
    def _socket_fits(cls, value: Path | None) -> Path | None:
        # The control socket beside it must fit in sun_path, or `kernelish
        # stop` could never prove who the daemon is.
        if value is not None and len(os.fsencode(value)) + 5 > SOCKET_PATH_MAX:
            raise ValueError(
                f"the control socket {str(value) + '.sock'!r} would be longer than "
                f"{SOCKET_PATH_MAX} bytes, the most a UNIX socket path may be"
            )
        return value

    @field_validator("user")
    @classmethod
    def _user_exists(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            _lookup_user(value)
        return value

    @field_validator("group")
    @classmethod
    def _group_exists(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            _lookup_group(value)
        return value

    @field_validator("max_spare")
    @classmethod
    def _spares_in_order(cls, value: int | None, info: pydantic.ValidationInfo) -> int | None:
        # Both given explicitly: refuse in every mode, not only pre-forking.  0 is "unset"
        # (Perl's ||=), so it never counts as a clash.
        min_spare = info.data.get("min_spare")
        if value and min_spare and value < min_spare:
            raise ValueError(
                f"max_spare ({value}) can't be smaller than min_spare ({min_spare}); "
                "madness follows"
            )
        return value

    @model_validator(mode="after")
    def _resolve(self) -> DaemonConfig:
        if self.user is not None:
            entry = _lookup_user(self.user)
            self._uid = entry.pw_uid
            self._gid = entry.pw_gid
        if self.group is not None:
            self._gid = _lookup_group(self.group).gr_gid
        if self.is_prefork():
            self.max_children, self.min_spare, self.max_spare = _resolve_spares(
                self.start_children or 0,
                self.max_children or 0,
                self.min_spare or 0,
                self.max_spare or 0,
            )
        return self

    @property
    def uid(self) -> int | None:
        """The numeric uid ``user`` names, or None if no user was given."""
        return self._uid

    @property
    def gid(self) -> int | None:
        """The numeric gid of ``group``, else of ``user``'s primary group, else None."""
        return self._gid

    def is_prefork(self) -> bool:
        """POE::Component::Daemon ``is_prefork``: ``start_children`` is non-zero."""
        return bool(self.start_children)

    def is_fork(self) -> bool:
        """POE::Component::Daemon ``is_fork``: ``max_children`` non-zero and not pre-forking."""
        return bool(self.max_children) and not self.is_prefork()

    def default_min_max(self) -> DaemonConfig:
        """A copy with the seed's ``default_min_max`` applied; see :func:`default_min_max`."""
        return default_min_max(self)


def default_min_max(cfg: DaemonConfig) -> DaemonConfig:
    """Port of POE::Component::Daemon ``default_min_max``: return ``cfg`` re-resolved.

    A :class:`DaemonConfig` is already resolved when built, and the rules are idempotent, so
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
    return type(cfg).model_validate(cfg.model_dump())
