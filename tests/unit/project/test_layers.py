"""The layer map of deploys/__init__.py holds: no module imports from a layer above its own
(imports for type hints only, under TYPE_CHECKING, left out)."""

from __future__ import annotations

import ast
from pathlib import Path

import deploys

ROOT = Path(deploys.__file__).parent


def layer_of(module: str) -> int:
    """The layer of ``deploys.<module>``: a dotted entry first, else its top package."""
    for index, names in enumerate(deploys.LAYERS):
        if module in names:
            return index
    top = module.split(".")[0]
    for index, names in enumerate(deploys.LAYERS):
        if top in names:
            return index
    raise AssertionError(f"deploys.{module} is in no layer of deploys.LAYERS")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _runtime_imports(path: Path) -> list[tuple[str, int]]:
    """``(module under deploys, line)`` for each import outside ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only |= {id(n) for n in ast.walk(node)}
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only or not isinstance(node, ast.ImportFrom | ast.Import):
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.startswith("deploys.")]
        elif node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            if node.module:
                targets = [".".join([*base, node.module])]
            else:
                targets = [".".join([*base, a.name]) for a in node.names]
        elif (node.module or "").startswith("deploys."):
            targets = [node.module or ""]
        elif node.module == "deploys":
            targets = [f"deploys.{a.name}" for a in node.names]
        else:
            continue  # the standard library or a third-party package
        for target in targets:
            found.append((target.removeprefix("deploys."), node.lineno))
    return found


def test_every_module_has_a_layer() -> None:
    for path in ROOT.rglob("*.py"):
        if path.name == "__init__.py" and path.parent == ROOT:
            continue
        layer_of(_module_name(path))


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == ROOT:
            continue
        me = _module_name(path)
        for target, line in _runtime_imports(path):
            if target.split(".")[0] == me.split(".")[0] and layer_of(target) <= layer_of(me):
                continue  # within its own package
            if layer_of(target) > layer_of(me):
                wrong.append(f"deploys/{path.relative_to(ROOT)}:{line} imports deploys.{target}")
    assert wrong == []
