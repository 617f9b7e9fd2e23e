"""No mutable state at module level in deploys/: what a run learns lives on the run's own
objects (the host, pyinfra's State, a read object), so two runs, or two hosts of one run,
never share it by accident. Module-level containers are constants, named in capitals and
never changed; no function keeps a cache of its own."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import weakref
from typing import Any

import deploys

ENTRY_FILES = ("prod", "update", "rollback", "destroy", "docker_vm")
"""They run a deploy when imported."""


def _modules() -> list[Any]:
    return [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(deploys.__path__, "deploys.")
        if info.name.rsplit(".", 1)[-1] not in ENTRY_FILES
    ]


def _assigned(module: Any) -> set[str]:
    """Names the module's own top-level statements assign (imports left out)."""
    tree = ast.parse(inspect.getsource(module))
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if isinstance(node, ast.Assign | ast.AnnAssign):
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_module_level_containers_are_constants() -> None:
    found = []
    for module in _modules():
        for name in _assigned(module):
            value = getattr(module, name)
            mutable = isinstance(value, dict | list | set | bytearray | weakref.WeakKeyDictionary)
            if mutable and not name.isupper() and name != "__all__":
                found.append(f"{module.__name__}.{name}")
    assert found == []


def test_no_function_keeps_a_cache() -> None:
    cached = [
        f"{module.__name__}.{name}"
        for module in _modules()
        for name, value in vars(module).items()
        if callable(value) and hasattr(value, "cache_info")
    ]
    assert cached == []
