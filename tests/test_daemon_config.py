"""DaemonConfig: POE::Component::Daemon's spawn parameters, validated, and default_min_max;
the common shape that validates them without pydantic, held to the model."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kernelish.components.daemon._config import (
    DEFAULTS,
    CommonDaemonConfig,
    _common,
    default_min_max,
    make_config,
)
from kernelish.components.daemon._config_model import DaemonConfig

COUNTS = ("max_children", "start_children", "min_spare", "max_spare")


def refused(field: str, **params: Any) -> ValidationError:
    """Build a config that must be refused, and check the refusal names ``field``."""
    with pytest.raises(ValidationError) as info:
        DaemonConfig(**params)
    assert field in str(info.value)
    return info.value


# -- defaults and accepted spellings ----------------------------------------------------


def test_defaults() -> None:
    cfg = DaemonConfig()
    assert cfg.alias == "Daemon"
    assert (cfg.detach, cfg.verbose) == (False, False)
    assert cfg.logfile is None
    assert cfg.pidfile is None
    assert all(getattr(cfg, name) is None for name in COUNTS)
    assert (cfg.requests, cfg.babysit, cfg.user, cfg.group) == (None, None, None, None)
    assert (cfg.uid, cfg.gid) == (None, None)
    assert (cfg.rogue_cpu, cfg.shutdown_timeout) == (600.0, 10.0)
    assert not cfg.is_prefork()
    assert not cfg.is_fork()


@pytest.mark.parametrize(("given", "expected"), [(1, True), (0, False), (True, True)])
def test_perl_style_booleans(given: int | bool, expected: bool) -> None:
    cfg = DaemonConfig.model_validate({"detach": given, "verbose": given})
    assert cfg.detach is expected
    assert cfg.verbose is expected


def test_seconds_accept_int_and_float() -> None:
    cfg = DaemonConfig(babysit=2, rogue_cpu=1.5, shutdown_timeout=3)
    assert (cfg.babysit, cfg.rogue_cpu, cfg.shutdown_timeout) == (2.0, 1.5, 3.0)


def test_logfile_and_pidfile_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "old.log").write_text("")
    cfg = DaemonConfig.model_validate({"logfile": "old.log", "pidfile": Path("d.pid")})
    assert cfg.logfile == tmp_path / "old.log"
    assert cfg.pidfile == tmp_path / "d.pid"
    assert cfg.logfile.is_absolute()
    assert cfg.pidfile.is_absolute()
    assert not (tmp_path / "d.pid").exists()  # validation creates nothing


def test_user_nobody_resolves_uid_and_gid() -> None:
    nobody = pwd.getpwnam("nobody")
    cfg = DaemonConfig(user="nobody")
    assert (cfg.uid, cfg.gid) == (nobody.pw_uid, nobody.pw_gid)
    by_uid = DaemonConfig(user=nobody.pw_uid)
    assert (by_uid.uid, by_uid.gid) == (nobody.pw_uid, nobody.pw_gid)


def test_group_overrides_users_primary_group() -> None:
    root_group = grp.getgrgid(0)
    cfg = DaemonConfig(user="nobody", group=root_group.gr_name)
    assert cfg.gid == 0
    assert DaemonConfig(group=0).gid == 0
    assert DaemonConfig(group=0).uid is None


def test_modes() -> None:
    assert DaemonConfig(max_children=3).is_fork()
    assert not DaemonConfig(max_children=3).is_prefork()
    pre = DaemonConfig(max_children=3, start_children=1)
    assert pre.is_prefork()
    assert not pre.is_fork()
    # Perl's "0 != ($x||0)": zero means the mode is off.
    assert not DaemonConfig(start_children=0, max_children=0).is_fork()
    assert not DaemonConfig(start_children=0).is_prefork()


def test_non_prefork_counts_are_left_alone() -> None:
    cfg = DaemonConfig(max_children=5)
    assert (cfg.min_spare, cfg.max_spare) == (None, None)


# -- default_min_max, exactly as the seed ----------------------------------------------


@pytest.mark.parametrize(
    ("params", "children", "min_spare", "max_spare"),
    [
        ({"start_children": 10}, 30, 10, 20),
        ({"start_children": 1, "max_children": 10}, 10, 2, 8),
        ({"start_children": 1, "max_children": 10, "max_spare": 6}, 10, 3, 6),
        ({"start_children": 1, "max_children": 3}, 3, 1, 2),  # int(0.6) = 0, then ||= 1
        ({"start_children": 1, "max_children": 10, "min_spare": 2}, 10, 2, 8),
        ({"start_children": 1, "max_children": 1}, 1, 1, 2),  # int(0.8) = 0, then ||= 2
        ({"start_children": 1, "max_children": 10, "max_spare": 1}, 10, 1, 1),  # int(0.5)=0
        ({"start_children": 4, "min_spare": 3}, 10, 3, 6),
        ({"start_children": 4, "max_spare": 5}, 9, 4, 5),
        ({"start_children": 2, "max_children": 0}, 6, 2, 4),  # 0 is unset, as with ||
        ({"start_children": 2, "min_spare": 0, "max_spare": 0}, 6, 2, 4),
    ],
)
def test_default_min_max(
    params: dict[str, int], children: int, min_spare: int, max_spare: int
) -> None:
    cfg = DaemonConfig.model_validate(params)
    assert (cfg.max_children, cfg.min_spare, cfg.max_spare) == (children, min_spare, max_spare)
    assert default_min_max(cfg) == cfg  # idempotent
    assert cfg.default_min_max() == cfg


def test_default_min_max_reresolves_after_assignment() -> None:
    cfg = DaemonConfig(start_children=10)
    cfg.max_children, cfg.min_spare, cfg.max_spare = 10, None, None
    again = default_min_max(cfg)
    assert (again.max_children, again.min_spare, again.max_spare) == (10, 2, 8)
    assert cfg.min_spare is None  # the original is not changed


def test_max_spare_smaller_than_defaulted_min_spare_is_madness() -> None:
    exc = refused("max_spare", start_children=1, max_children=10, min_spare=9)
    assert "max_spare (8) can't be smaller than min_spare (9); madness follows" in str(exc)
    refused("max_spare", start_children=10, max_spare=3)  # min_spare defaults to 10


@pytest.mark.parametrize("extra", [{}, {"start_children": 1}, {"max_children": 9}])
def test_explicit_max_spare_below_min_spare_refused_in_every_mode(extra: dict[str, int]) -> None:
    refused("max_spare", min_spare=5, max_spare=4, **extra)


# -- refusals, each naming its field ---------------------------------------------------


@pytest.mark.parametrize("field", COUNTS)
@pytest.mark.parametrize("value", [-1, True, False, "3", 3.0, 2.5, [3], {"n": 3}])
def test_counts_must_be_non_negative_real_ints(field: str, value: object) -> None:
    refused(field, **{field: value})


@pytest.mark.parametrize("value", [0, -2, True, "3", 1.0])
def test_requests_must_be_positive_int(value: object) -> None:
    refused("requests", requests=value)


@pytest.mark.parametrize("field", ["babysit", "rogue_cpu", "shutdown_timeout"])
@pytest.mark.parametrize("value", [0, -1.5, True, "2", float("inf"), float("nan")])
def test_seconds_must_be_positive_numbers(field: str, value: object) -> None:
    refused(field, **{field: value})


@pytest.mark.parametrize("field", ["detach", "verbose"])
@pytest.mark.parametrize("value", [2, -1, "yes", "1", 1.0, None])
def test_booleans_are_strict(field: str, value: object) -> None:
    refused(field, **{field: value})


@pytest.mark.parametrize("value", ["", 3, None, b"Daemon"])
def test_alias_must_be_non_empty_string(value: object) -> None:
    refused("alias", alias=value)


@pytest.mark.parametrize("field", ["logfile", "pidfile"])
def test_file_in_missing_directory(field: str, tmp_path: Path) -> None:
    exc = refused(field, **{field: tmp_path / "no-such-dir" / "x"})
    assert "does not exist" in str(exc)


@pytest.mark.parametrize("field", ["logfile", "pidfile"])
def test_file_whose_parent_is_a_file(field: str, tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    refused(field, **{field: tmp_path / "plain" / "x"})


@pytest.mark.parametrize("field", ["logfile", "pidfile"])
def test_file_that_is_a_directory(field: str, tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    exc = refused(field, **{field: tmp_path / "dir"})
    assert "not a regular file" in str(exc)


@pytest.mark.parametrize("field", ["logfile", "pidfile"])
def test_file_of_wrong_type(field: str) -> None:
    refused(field, **{field: 42})


@pytest.mark.parametrize("value", ["no-such-user-kernelish", 2**31 - 7, -1, 1.5, True])
def test_unknown_or_malformed_user(value: object) -> None:
    refused("user", user=value)


@pytest.mark.parametrize("value", ["no-such-group-kernelish", 2**31 - 7, -1, 1.5, True])
def test_unknown_or_malformed_group(value: object) -> None:
    refused("group", group=value)


def test_unknown_parameter_is_refused_by_name() -> None:
    refused("max_kids", max_kids=3)
    refused("Alias", Alias="Daemon")  # names are the seed's, case and all


# -- random values of random types -----------------------------------------------------

_TMP = Path(tempfile.gettempdir())
_ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.sampled_from(["3", "0", "1", "nobody", "root", "wait"]),
    st.lists(st.integers(0, 3), max_size=2),
)
_COUNT = st.one_of(st.integers(0, 40), st.integers(0, 12), st.integers(-2, 40), _ANY)
_SECONDS = st.one_of(st.floats(-1, 1000), st.integers(-1, 1000), _ANY)
_FILE = st.one_of(
    st.sampled_from(
        [
            str(_TMP / "kernelish-config-test.log"),
            _TMP / "no-such-dir-kernelish" / "x.log",
            str(_TMP),
            "relative.log",
        ]
    ),
    _ANY,
)
_ID = st.one_of(
    st.sampled_from(["nobody", "root", 0, os.getuid(), "no-such-id-kernelish", "0"]), _ANY
)
_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "alias": st.one_of(st.text(max_size=6), _ANY),
        "detach": st.one_of(st.sampled_from([0, 1, True, False]), _ANY),
        "verbose": st.one_of(st.sampled_from([0, 1, True, False]), _ANY),
        "max_children": _COUNT,
        "start_children": _COUNT,
        "min_spare": _COUNT,
        "max_spare": _COUNT,
        "requests": _COUNT,
        "babysit": _SECONDS,
        "rogue_cpu": _SECONDS,
        "shutdown_timeout": _SECONDS,
        "user": _ID,
        "group": _ID,
        "logfile": _FILE,
        "pidfile": _FILE,
        "no_such_param": _ANY,
    },
)


@settings(max_examples=200, deadline=None, database=None)
@given(params=_PARAMS)
def test_random_parameters_validate_or_name_a_field(params: dict[str, Any]) -> None:
    try:
        cfg = DaemonConfig(**params)
    except ValidationError as exc:
        text = str(exc)
        assert any(name in text for name in params), (params, text)
        return
    assert "no_such_param" not in params
    for name in COUNTS:
        value = getattr(cfg, name)
        assert value is None or (type(value) is int and value >= 0), (name, value)
    assert not (cfg.is_prefork() and cfg.is_fork())
    if cfg.is_prefork():
        assert cfg.min_spare is not None
        assert cfg.max_spare is not None
        assert cfg.max_children is not None
        assert 1 <= cfg.min_spare <= cfg.max_spare
        if params.get("max_children"):
            assert cfg.max_children == params["max_children"]
        else:  # start_children only: the pool is the start set plus the spares
            assert cfg.max_children == params["start_children"] + cfg.max_spare
    for name in ("min_spare", "max_spare"):
        if params.get(name) and cfg.is_prefork():
            assert getattr(cfg, name) == params[name]  # an explicit value is never overridden
    for name in ("logfile", "pidfile"):
        path = getattr(cfg, name)
        assert path is None or path.is_absolute()
    if cfg.requests is not None:
        assert cfg.requests >= 1
    assert (cfg.uid is None) == (params.get("user") is None)
    assert default_min_max(cfg) == cfg


def test_a_pidfile_whose_control_socket_path_cannot_fit_is_refused(tmp_path: Path) -> None:
    long_dir = tmp_path / ("d" * (110 - len(str(tmp_path))))
    long_dir.mkdir()
    error = refused("pidfile", pidfile=long_dir / "x.pid")
    assert "longer than 107 bytes" in str(error)
    assert DaemonConfig(pidfile=tmp_path / "x.pid").pidfile == tmp_path / "x.pid"


# -- the common shape: the same configuration as the model, without pydantic -------------


def _same_as_model(params: dict[str, Any]) -> CommonDaemonConfig | None:
    """The common shape's answer for ``params``, checked against the model's:
    a config it accepts is the model's, value for value (types included)."""
    common = _common(params)
    if common is None:
        return None
    model = DaemonConfig(**params)  # the model accepts what the shape accepts ...
    assert common.model_dump() == model.model_dump(), params  # ... and keeps the same
    for name, value in model.model_dump().items():
        assert type(getattr(common, name)) is type(value), (name, params)
    assert (common.uid, common.gid) == (model.uid, model.gid)
    assert (common.is_prefork(), common.is_fork()) == (model.is_prefork(), model.is_fork())
    assert common.model_fields_set == model.model_fields_set
    return common


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"start_children": 10},
        {"start_children": 1, "max_children": 10},
        {"start_children": 3, "min_spare": 2, "max_spare": 4, "requests": 1000},
        {"max_children": 8},
        {"alias": "D", "detach": 1, "verbose": True, "notify": 0, "babysit": 0.5},
        {"rogue_cpu": 30.0, "shutdown_timeout": 1.5, "notify": None},
        {"logfile": "relative.log", "pidfile": str(Path(tempfile.gettempdir()) / "k.pid")},
        {"logfile": Path(tempfile.gettempdir()) / "k.log", "max_children": 0},
    ],
)
def test_the_common_shape_takes_the_usual_parameters(params: dict[str, Any]) -> None:
    assert _same_as_model(params) is not None, params


@pytest.mark.parametrize(
    "params",
    [
        {"user": "nobody"},  # looked up by the model
        {"babysit": 5},  # an int the model makes a float
        {"start_children": True},
        {"start_children": 10, "max_spare": 3},  # madness: the model words it
        {"min_spare": 4, "max_spare": 2},
        {"logfile": Path(tempfile.gettempdir()) / "no-such-dir-kernelish" / "x.log"},
        {"alias": ""},
        {"no_such_param": 1},
        {"detach": None},
        {"rogue_cpu": float("inf")},
    ],
)
def test_anything_else_goes_to_the_model(params: dict[str, Any]) -> None:
    assert _common(params) is None
    try:
        expected: Any = DaemonConfig(**params).model_dump()
    except ValidationError as exc:
        expected = str(exc)
    try:
        got: Any = make_config(params).model_dump()  # type: ignore[attr-defined]
    except ValidationError as exc:
        got = str(exc)
    assert got == expected


@settings(max_examples=300, deadline=None, database=None)
@given(params=_PARAMS)
def test_random_parameters_the_common_shape_agrees_with_the_model(params: dict[str, Any]) -> None:
    _same_as_model(params)


def test_the_common_shape_knows_every_field_of_the_model() -> None:
    assert list(DEFAULTS) == list(DaemonConfig.model_fields)
    assert {name: f.default for name, f in DaemonConfig.model_fields.items()} == DEFAULTS
    assert default_min_max(CommonDaemonConfig(DEFAULTS)).model_dump() == DaemonConfig().model_dump()


LEAN_DAEMON = """
import sys
from kernelish.components.daemon import DaemonComponent
import kernelish.wheels, kernelish.filters
d = DaemonComponent.new(start_children=3, requests=100, max_children=8, detach=False)
assert d.is_prefork() and d.config.max_spare == 6, d.config
heavy = ("pydantic", "psutil", "ctypes", "json", "fcntl", "grp")
print(sorted(name for name in heavy if name in sys.modules))
from kernelish.components.daemon import DaemonConfig
print(DaemonConfig.__module__)
"""


def test_a_daemon_with_common_parameters_never_imports_pydantic() -> None:
    out = subprocess.run(
        [sys.executable, "-c", LEAN_DAEMON],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=True,
    )
    lean, model = out.stdout.split()
    assert lean == "[]"
    assert model == "kernelish.components.daemon._config_model"
