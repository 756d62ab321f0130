"""The public face: PORTING.md's names import, nothing underscored leaks."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import kernelish

#: Kernel names from PORTING.md's tables that ``kernelish`` must export.
KERNEL_NAMES = [
    "poe_kernel",
    "Session",
    "KERNEL",
    "HEAP",
    "SESSION",
    "SENDER",
    "STATE",
    "OBJECT",
    *(f"ARG{i}" for i in range(10)),
]

#: (module, names) the other parts of kernelish export; their owners extend
#: this list.
OTHER_EXPORTS: list[tuple[str, list[str]]] = [
    ("kernelish.wheels", ["SocketFactory", "ReadWrite", "FollowTail", "Run", "ListenAccept"]),
    (
        "kernelish.filters",
        [
            "Line",
            "Stream",
            "Reference",
            "Block",
            "RecordBlock",
            "Stackable",
            "Map",
            "Grep",
            "HTTPD",
            "HTTPClient",
        ],
    ),
    (
        "kernelish.http",
        ["Headers", "Request", "Response", "http_date", "reason_phrase", "wsgi_environ"],
    ),
    ("kernelish.drivers", ["SysRW"]),
    ("kernelish.components.daemon", ["DaemonComponent", "Daemon", "Scoreboard", "DaemonConfig"]),
    ("kernelish.components.server_tcp", ["ServerTCP"]),
    ("kernelish.components.server_http", ["ServerHTTP", "ServerResponse", "Connection"]),
    ("kernelish.components.client_tcp", ["ClientTCP"]),
    ("kernelish.components.client_http", ["ClientHTTP"]),
    ("kernelish.wsgi", ["serve", "WSGIHandler", "ServeConfig", "ServeConfigError", "import_app"]),
]


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_kernel_names_import_from_kernelish(name: str) -> None:
    assert name in kernelish.__all__
    assert getattr(kernelish, name) is not None


def test_peek_module() -> None:
    from kernelish.peek import Peek

    assert Peek().id() == kernelish.poe_kernel.ID


@pytest.mark.parametrize(("module", "names"), OTHER_EXPORTS)
def test_other_exports(module: str, names: list[str]) -> None:
    mod = importlib.import_module(module)
    for name in names:
        assert hasattr(mod, name), f"{module}.{name}"


def _modules() -> list[str]:
    names = ["kernelish"]
    for info in pkgutil.walk_packages(kernelish.__path__, "kernelish."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return names


def test_no_underscored_name_in_any_all() -> None:
    leaks = []
    for name in _modules():
        mod = importlib.import_module(name)  # a module that does not import fails here
        for exported in getattr(mod, "__all__", []):
            if exported.startswith("_"):
                leaks.append(f"{name}.{exported}")
    assert leaks == []
