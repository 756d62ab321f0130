"""Finding the application: ``module:app`` and ``module:factory()``, as gunicorn.

gunicorn's ``util.import_app``: ``MODULE[:EXPRESSION]``, the expression a
name (``application`` when left out), a dotted attribute, or a call of one
with literal arguments (``create_app('production', debug=False)``), whose
result is the application.  The module is imported with the working
directory first on ``sys.path`` (``--chdir`` moves it).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from typing import Any

__all__ = ["AppImportError", "check_app_spec", "import_app", "split_spec"]


class AppImportError(ImportError):
    """The application could not be found or made (gunicorn's ``AppImportError``)."""


def split_spec(spec: str) -> tuple[str, str]:
    """``'pkg.mod:make_app()'`` -> ``('pkg.mod', 'make_app()')``; checks the shape only."""
    if not isinstance(spec, str) or not spec.strip():
        raise AppImportError("the application must be given as MODULE[:NAME] or MODULE:FACTORY()")
    module, _, expression = spec.partition(":")
    module, expression = module.strip(), (expression.strip() or "application")
    if not module or not all(part.isidentifier() for part in module.split(".")):
        raise AppImportError(f"{spec!r}: {module!r} is not a module name")
    _parse(spec, expression)
    return module, expression


def _parse(spec: str, expression: str) -> tuple[str, list[Any], dict[str, Any], bool]:
    """The attribute path, the call's literal arguments, and whether it is a call."""
    try:
        node = ast.parse(expression, mode="eval").body
    except SyntaxError:
        raise AppImportError(
            f"{spec!r}: failed to parse {expression!r} as an attribute name or function call"
        ) from None
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    call = isinstance(node, ast.Call)
    if isinstance(node, ast.Call):
        try:
            args = [ast.literal_eval(arg) for arg in node.args]
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
        except ValueError:
            raise AppImportError(
                f"{spec!r}: the arguments of {expression!r} must be literals"
            ) from None
        node = node.func
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise AppImportError(f"{spec!r}: {expression!r} is not an attribute name or function call")
    parts.append(node.id)
    return ".".join(reversed(parts)), args, kwargs, call


def check_app_spec(spec: str) -> None:
    """Refuse a spec whose module cannot be found, without running it (the
    application is imported after the fork: a check must not import it)."""
    module, _ = split_spec(spec)
    top = module.split(".")[0]
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise AppImportError(f"{spec!r}: {exc}") from None
    if found is None:
        raise AppImportError(f"{spec!r}: no module named {top!r} (sys.path[0] = {sys.path[0]!r})")


def import_app(spec: str) -> Any:
    """Import ``spec``'s module and return its application (gunicorn's
    ``util.import_app``).  An error in the module itself propagates."""
    module_name, expression = split_spec(spec)
    name, args, kwargs, call = _parse(spec, expression)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise AppImportError(f"{spec!r}: no module named {exc.name!r}") from None
        raise
    obj: Any = module
    for attr in name.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise AppImportError(
                f"{spec!r}: failed to find attribute {name!r} in {module_name!r}"
            ) from None
    if call:
        obj = obj(*args, **kwargs)
    if obj is None:
        raise AppImportError(f"{spec!r}: the application is None")
    if not callable(obj):
        raise AppImportError(f"{spec!r}: the application {obj!r} is not callable")
    return obj
