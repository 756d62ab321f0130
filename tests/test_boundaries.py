"""Dependencies point one way: no module of a subpackage (wheels, filters,
drivers, components, demo) reaches into the private attributes of the
kernel's objects, and the kernel's runtime module imports nothing of
kernelish.  Read from the source with ``ast`` -- a check that cannot be
fooled by what happens to run."""

from __future__ import annotations

import ast
from pathlib import Path

import kernelish

ROOT = Path(kernelish.__file__).parent


def _private_attributes(paths: list[Path]) -> set[str]:
    """Underscored attribute names the modules at ``paths`` define on their
    objects (``self._x = ...`` and ``__slots__`` entries)."""
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
            ):
                names.add(node.attr)
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
            ):
                for element in ast.walk(node.value):
                    if isinstance(element, ast.Constant) and isinstance(element.value, str):
                        names.add(element.value)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_no_subpackage_reads_the_kernels_private_attributes() -> None:
    core = _private_attributes(sorted(ROOT.glob("_*.py")))
    assert {"_states", "_lifecycle", "_core", "_io", "_positions"} <= core
    offences = []
    for package in sorted(p for p in ROOT.iterdir() if (p / "__init__.py").exists()):
        modules = sorted(package.rglob("*.py"))
        own = _private_attributes(modules)
        for path in modules:
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Attribute) or node.attr not in core - own:
                    continue
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                offences.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert offences == []


def _package_of(module: str) -> str:
    return module.rpartition(".")[0]


def test_no_module_imports_a_private_name_of_another_package() -> None:
    offences = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT.parent).with_suffix("")
        here = ".".join(relative.parts)
        package = here if path.name == "__init__.py" else _package_of(here)
        package = package.removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or (node.module or "").startswith("sys"):
                continue
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = _package_of(base)
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            if not source.startswith("kernelish"):
                continue
            for alias in node.names:
                target = f"{source}.{alias.name}"
                # The private part: a module or name starting with "_" below
                # the package it is imported into is that package's business.
                private = [p for p in target.split(".") if p.startswith("_") and p != "__init__"]
                if not private:
                    continue
                owner = target[: target.index("." + private[0])]
                if not package.startswith(owner):
                    offences.append(f"{path.relative_to(ROOT)}:{node.lineno}: {target}")
    assert offences == []


def test_the_runtime_module_is_a_leaf() -> None:
    tree = ast.parse((ROOT / "_runtime.py").read_text())
    imported = [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level and node.module
    ]
    # Only for type checking, and the first-use fallback to poe_kernel.
    assert set(imported) <= {"_kernel"}


def _private_names(paths: list[Path]) -> set[str]:
    """:func:`_private_attributes`, and the underscored names the modules'
    classes define in their bodies (class attributes, methods)."""
    names = _private_attributes(paths)
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    names.update(t.id for t in item.targets if isinstance(t, ast.Name))
                elif isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(item.name)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_no_package_reads_another_packages_private_attributes() -> None:
    """The same rule between every two packages (the Daemon, ServerHTTP, WSGI...):
    a private attribute another package defines on its objects, and this package
    does not, is never read or written here -- ``x._name`` with ``x`` not
    ``self``/``cls``.  (The rule the sync worker once broke: the Daemon facade's
    component reference, ServerResponse's fields.)"""
    packages = sorted({p.parent for p in ROOT.rglob("__init__.py")})
    private = {p: _private_names(sorted(p.glob("*.py"))) for p in packages}
    offences = []
    for package in packages:
        others = set().union(*(names for p, names in private.items() if p != package))
        # socket.socket._accept: the standard library's, which a kernelish class
        # happens to name a method after.
        foreign = others - private[package] - {"_accept"}
        for path in sorted(package.glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Attribute) or node.attr not in foreign:
                    continue
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                offences.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert offences == []
