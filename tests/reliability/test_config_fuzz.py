"""Hypothesis drives the Daemon's configuration: every invalid value is
refused at ``spawn()`` with a one-line DaemonConfigError naming the field, and every
valid configuration spawns (in a forked child, since a valid one may detach,
redirect stdout or drop privileges)."""

from __future__ import annotations

import json
import math
import os
import pwd
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernelish import poe_kernel
from kernelish.components.daemon import DaemonComponent, DaemonConfigError, _process

from ..conftest import _reset_kernel
from ._harness import figures

DIR = Path(tempfile.gettempdir())  # replaced per run by the fixture below
Field = tuple[str, Any, bool]  # name, value, valid?


def valid_or_not(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> Any:
    """(value, is_valid) pairs, valid three times in four."""
    good = valid.map(lambda v: (v, True))
    return st.one_of(good, good, good, invalid.map(lambda v: (v, False)))


ODD = st.one_of(st.text(max_size=3), st.lists(st.integers(), max_size=2), st.just(object()))
COUNT = valid_or_not(
    st.one_of(st.none(), st.integers(0, 40)),
    st.one_of(st.integers(max_value=-1), st.floats(0.5, 3.5), st.booleans(), ODD),
)
SECONDS = valid_or_not(
    st.floats(0.001, 1e6),
    st.one_of(
        st.floats(max_value=0.0),
        st.sampled_from([math.nan, math.inf]),
        st.booleans(),
        ODD,
    ),
)
FLAG = valid_or_not(st.sampled_from([False, True, 0, 1]), st.one_of(st.integers(2, 9), ODD))
PATH = valid_or_not(
    st.sampled_from(["{dir}/daemon.log", "{dir}/other.log", None]),
    st.sampled_from(["/no/such/dir/x.log", "{dir}", "/proc/self/no/x"]),
)
FIELDS: dict[str, Any] = {
    "alias": valid_or_not(
        st.text(min_size=1, max_size=8), st.one_of(st.just(""), st.integers(), st.none())
    ),
    "detach": FLAG,
    "verbose": FLAG,
    "logfile": PATH,
    "pidfile": PATH,
    "start_children": COUNT,
    "max_children": COUNT,
    "min_spare": COUNT,
    "max_spare": COUNT,
    "requests": valid_or_not(
        st.one_of(st.none(), st.integers(1, 10**6)),
        st.one_of(st.integers(max_value=0), st.text(max_size=2), st.floats(1.5, 2.5)),
    ),
    "babysit": SECONDS,
    "rogue_cpu": SECONDS,
    "shutdown_timeout": SECONDS,
    "user": valid_or_not(
        st.sampled_from([None, "root", "nobody", 0, 65534, "0"]),
        st.sampled_from(["no-such-user-kernelish", -1, 2**40, 1.5]),
    ),
    "group": valid_or_not(
        st.sampled_from([None, "root", 0]),
        st.sampled_from(["no-such-group-kernelish", -3, 2**40]),
    ),
    "max_childern": valid_or_not(st.nothing(), st.integers()),  # a typo is refused
}


@st.composite
def configs(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    names = draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=6))
    params: dict[str, Any] = {}
    invalid: set[str] = set()
    for name in sorted(names):
        value, ok = draw(FIELDS[name])
        if isinstance(value, str) and "{dir}" in value:
            value = value.format(dir=DIR)
        params[name] = value
        if not ok:
            invalid.add(name)
    return params, invalid


def spares_madness(p: dict[str, Any]) -> bool:
    """The seed's default_min_max, written out independently: does this
    all-valid configuration end with max_spare < min_spare?"""
    mn, mx = p.get("min_spare") or 0, p.get("max_spare") or 0
    if mn and mx and mx < mn:
        return True
    if not p.get("start_children"):
        return False
    if p.get("max_children"):
        if mx:
            mn = mn or int(mx / 2)
        else:
            mn = mn or int(p["max_children"] * 0.2)
            mx = int(p["max_children"] * 0.8)
        mn, mx = mn or 1, mx or 2
    else:
        mn = mn or p["start_children"]
        mx = mx or 2 * mn
    return bool(mx < mn)


def spawn_in_child(params: dict[str, Any]) -> dict[str, Any]:
    """``spawn(**params)`` in a forked child (the grandchild, if it detaches)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            daemon = DaemonComponent.spawn(**params)
            session = daemon.session
            report = {
                "session": session is not None and session in poe_kernel.introspection.sessions(),
                "alias": poe_kernel.alias_resolve(daemon.config.alias) is session,
                "uid": os.getuid(),
                "prefork": daemon.is_prefork(),
                "pid": os.getpid(),
            }
            os.write(w, json.dumps(report).encode())
            code = 0
        except BaseException as exc:
            os.write(w, json.dumps({"error": repr(exc)}).encode())
        finally:
            os._exit(code)
    os.close(w)
    data = b""
    try:
        while chunk := os.read(r, 65536):
            data += chunk
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    return dict(json.loads(data))


@pytest.fixture
def scratch() -> Iterator[Path]:
    global DIR
    path = Path(tempfile.mkdtemp(prefix="kernelish-fuzz-"))
    if os.geteuid() == 0:
        # user='nobody' writes its pidfile here after dropping privileges.
        nobody = pwd.getpwnam("nobody")
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    DIR = path
    try:
        yield path
    finally:
        for child in path.iterdir():
            child.unlink()
        path.rmdir()


def test_random_configurations_are_refused_or_spawn(scratch: Path) -> None:
    tally = {"invalid": 0, "madness": 0, "spawned": 0}
    start = time.monotonic()
    _process.load_prctl()  # once here, not in every forked child

    @settings(
        max_examples=1000,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(configs())
    def check(case: tuple[dict[str, Any], set[str]]) -> None:
        params, invalid = case
        _reset_kernel()
        if invalid:
            tally["invalid"] += 1
            with pytest.raises(DaemonConfigError) as info:
                DaemonComponent.spawn(**params)
            located = {str(e["loc"][0]) for e in info.value.errors() if e["loc"]}
            assert invalid <= located, (params, info.value)
            # The one cross-field rule is also reported when it applies.
            if extra := located - invalid:
                assert extra == {"max_spare"}, (params, info.value)
                assert params["max_spare"] < params["min_spare"], params
            assert not poe_kernel.introspection.sessions(), "a refused spawn creates no session"
            return
        if spares_madness(params):
            tally["madness"] += 1
            with pytest.raises(DaemonConfigError) as info:
                DaemonComponent.spawn(**params)
            assert "max_spare" in str(info.value) and "min_spare" in str(info.value)
            assert not poe_kernel.introspection.sessions()
            return
        tally["spawned"] += 1
        report = spawn_in_child(params)
        assert report.get("session") and report.get("alias"), (params, report)
        if params.get("user") in ("nobody", 65534):
            assert report["uid"] == 65534

    check()
    elapsed = time.monotonic() - start
    figures("config_fuzz", elapsed_s=elapsed, **tally)
    assert tally["invalid"] > 100 and tally["spawned"] > 100
