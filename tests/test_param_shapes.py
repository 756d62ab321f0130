"""Each component's common parameter shape (kernelish._params.LazyParams)
against its pydantic model: what the shape accepts, the model accepts with
the same values and the same fields set; the defaults and the CamelCase
spellings are the model's; and importing the wheels and filters, or building
a line server's wheels, does not import pydantic at all."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_core import PydanticUndefined

import kernelish
import kernelish.components.client_tcp
import kernelish.drivers
import kernelish.filters
import kernelish.wheels
from kernelish._params import LazyParams, ParameterError, callback, camel, exact

kernelish.wheels.Run  # noqa: B018 - the lazily imported wheel: its models too

SHAPES = [shape for shape in LazyParams.made if shape.fields() or shape.common({}) is not None]


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def pool(sock: socket.socket) -> list[Any]:
    """Values of many types and edges, good and bad for one field or another."""
    return [
        None,
        0,
        1,
        -1,
        7,
        2**40,
        True,
        False,
        1.5,
        0.0,
        float("inf"),
        float("nan"),
        "",
        "x",
        "\n",
        "utf-8",
        "latin-1",
        "utf-16",
        "no-such-codec",
        "127.0.0.1",
        "tcp",
        b"",
        b"\r\n",
        [],
        (1, 2),
        sock,
        sock.fileno(),
        kernelish.filters.Line(),
        kernelish.filters.Stream(),
        socket.AF_INET,
        object(),
        on_event,
        {"go": on_event},
        {"go": 1},
        {1: on_event},
        kernelish.Session,
        int,
    ]


def on_event(_: Any) -> None:
    """A callable, for the shapes' callback parameters (ClientTCP's)."""


def test_every_component_has_its_shape_checked() -> None:
    owners = {shape.owner for shape in SHAPES}
    assert {"Line", "SysRW", "ReadWrite", "SocketFactory", "Block", "Stream", "ClientTCP"} <= owners


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: shape.owner)
def test_defaults_and_spellings_are_the_models(shape: LazyParams) -> None:
    model = shape.model
    for field in shape.fields():
        assert model.model_fields[field].alias == camel(field)
    empty = shape.common({})
    if empty is None:  # required fields: the defaults of the others
        return
    assert set(shape._defaults) == set(model.model_fields)
    slow = model.model_validate({})
    for field, info in model.model_fields.items():
        assert info.default is not PydanticUndefined
        assert getattr(empty, field) == getattr(slow, field), field
    assert empty.model_fields_set == slow.model_fields_set == set()


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: shape.owner)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_what_the_shape_accepts_the_model_accepts_unchanged(
    shape: LazyParams, pair: tuple[socket.socket, socket.socket], data: st.DataObject
) -> None:
    model, values = shape.model, pool(pair[0])
    fields = list(shape.fields())
    others = [f for f in model.model_fields if f not in fields]
    params: dict[str, Any] = {}
    # Mostly fields of the shape with values its checks take (so the shape
    # answers, and its defaults and cross-field rules are what is tested),
    # sometimes anything at all.
    for field in fields:
        if model.model_fields[field].is_required() or data.draw(st.integers(0, 2)) == 0:
            fit = [v for v in values if shape._checks[field](v)]
            anything = data.draw(st.integers(0, 9)) == 0
            spelling = data.draw(st.sampled_from([field, camel(field)]))
            params[spelling] = data.draw(st.sampled_from(values if anything or not fit else fit))
    if others and data.draw(st.integers(0, 9)) == 0:
        params[camel(data.draw(st.sampled_from(others)))] = data.draw(st.sampled_from(values))
    fast = shape.common(params)
    if fast is None:
        return
    slow = model.model_validate(params)
    for field in model.model_fields:
        # ``is`` first: an ``Any`` field keeps the very object (a NaN too).
        fast_value, slow_value = getattr(fast, field), getattr(slow, field)
        assert fast_value is slow_value or fast_value == slow_value, (field, params)
    assert fast.model_fields_set == slow.model_fields_set


def test_what_the_shape_refuses_pydantic_words() -> None:
    from kernelish.filters import Line
    from kernelish.wheels import SocketFactory

    with pytest.raises(ParameterError, match="MaxLength must be greater than 0"):
        Line(MaxLength=0)
    with pytest.raises(ParameterError, match="MaxBuffer \\(10\\) must be at least MaxLength"):
        Line(MaxLength=100, MaxBuffer=10)
    with pytest.raises(ParameterError, match="Encoding is not a known codec"):
        Line(Encoding="no-such-codec")
    with pytest.raises(ParameterError, match="missing required parameter 'FailureEvent'"):
        SocketFactory(SuccessEvent="ok", BindAddress="127.0.0.1")
    with pytest.raises(ParameterError, match="given twice"):
        SocketFactory(SuccessEvent="ok", success_event="ok", FailureEvent="no")


LEAN = """
import sys
import kernelish.drivers, kernelish.filters, kernelish.wheels
from kernelish import poe_kernel, Session
from kernelish.drivers import SysRW
from kernelish.filters import Block, Line, Stream
from kernelish.wheels import ReadWrite, SocketFactory
from kernelish.components.client_tcp import ClientTCP

def _start(_):
    listener = SocketFactory(BindAddress="127.0.0.1", BindPort=0, Reuse="yes",
                             SuccessEvent="accept", FailureEvent="error")
    a, b = __import__("socket").socketpair()
    wheel = ReadWrite(Handle=a, Filter=Line(MaxLength=4096), InputEvent="input",
                      ErrorEvent="error", FlushedEvent="flushed", InputTimeout=60,
                      HighMark=65536, LowMark=4096, Backpressure=True)
    Line(Literal="\\n"), SysRW(BlockSize=4096), Stream(), Block()
    del wheel, listener
    ClientTCP(RemoteAddress="127.0.0.1", RemotePort=1, ServerInput=print, Connected=print,
              ConnectError=lambda _: None, Disconnected=print, ConnectTimeout=5)

Session.create(inline_states={"_start": _start})
poe_kernel.run()
assert "Run" in dir(kernelish.wheels) and "Run" in kernelish.wheels.__all__
heavy = ("pydantic", "pickle", "json", "zlib", "termios", "subprocess", "kernelish.wheels._run")
print(sorted(name for name in heavy if name in sys.modules))
"""


def test_a_client_tcp_with_plain_parameters_skips_pydantic() -> None:
    shape = next(shape for shape in SHAPES if shape.owner == "ClientTCP")
    params: dict[str, Any] = {
        "RemoteAddress": "127.0.0.1",
        "RemotePort": 80,
        "Connected": on_event,
        "ServerInput": on_event,
        "Disconnected": on_event,
        "ConnectTimeout": 5,
        "Alias": "client",
        "InlineStates": {"go": on_event},
        "Args": [1, 2],
        "HighMark": 100,
        "LowMark": 10,
        "ServerHigh": on_event,
        "ServerLow": on_event,
    }
    fast = shape.common(params)
    assert fast is not None
    slow = shape.model.model_validate(params)
    for field in shape.model.model_fields:
        assert getattr(fast, field) == getattr(slow, field), field
    assert fast.model_fields_set == slow.model_fields_set
    # What the shape leaves to pydantic: a half set of marks, no port.
    assert shape.common({**params, "ServerLow": None}) is None
    assert shape.common({k: v for k, v in params.items() if k != "RemotePort"}) is None
    with pytest.raises(ParameterError, match="must define all four"):
        shape.parse({**params, "ServerLow": None})


def test_a_line_server_never_imports_pydantic() -> None:
    out = subprocess.run(
        [sys.executable, "-c", LEAN],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_a_shapes_plans_check_each_call_and_are_bounded() -> None:
    shape = LazyParams(
        "Plans", "kernelish.filters._models:LineParams", {"a": 0, "b": None}, {"a": exact(int)}
    )
    shape._checks["b"] = callback()
    shape._names.update({"b": ("b", shape._checks["b"]), "B": ("b", shape._checks["b"])})
    assert shape.common({"a": 1, "b": on_event}).b is on_event
    assert shape.common({"a": "1", "b": on_event}) is None  # the same names, a bad value
    assert shape.common({"a": 1, "b": 1}) is None
    found = shape.common({"B": None, "A": 2})
    assert (found.a, found.b, found.model_fields_set) == (2, None, {"a", "b"})
    assert shape.common({"a": 1, "A": 2}) is None  # one parameter given twice
    for n in range(LazyParams.PLANS + 10):
        assert shape.common({f"unknown{n}": 1}) is None
    assert len(shape._plans) == LazyParams.PLANS
    assert shape.common({"unknown1000": 1, "a": 1}) is None
    assert shape.common({"a": 3}).a == 3
    LazyParams.made.remove(shape)
