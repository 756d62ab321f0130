"""The pydantic model of the Daemon's parameters (see :mod:`._config`).

Imported when :func:`~._config.make_config` meets parameters outside the common shape, or
when a program uses :class:`DaemonConfig` itself (``from kernelish.components.daemon import
DaemonConfig``): importing pydantic is most of what the Daemon's configuration costs a
forking server.  Each refusal is a :class:`pydantic.ValidationError` whose message names the
offending parameter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pydantic
from pydantic import BeforeValidator, ConfigDict, Field, Strict, field_validator, model_validator

from ._config import (
    _check_file_path,
    _check_socket_fits,
    _lookup_group,
    _lookup_user,
    _perl_bool,
    _resolve_spares,
)

__all__ = ["DaemonConfig"]

# Strict types: Perl would happily take '3' for 3, but in Python a string or a bool where a
# count belongs is nearly always a bug at the call site, so it is refused rather than coerced.
_PerlBool = Annotated[bool, Strict(), BeforeValidator(_perl_bool)]
_Count = Annotated[int, Strict(), Field(ge=0)]
_Seconds = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
_Id = Annotated[str, Strict()] | Annotated[int, Strict(), Field(ge=0)]


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
        return _check_socket_fits(value)

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
        """A copy with the seed's ``default_min_max`` applied; see
        :func:`~._config.default_min_max`."""
        return type(self).model_validate(self.model_dump())
