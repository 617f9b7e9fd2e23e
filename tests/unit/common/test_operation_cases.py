"""One case file per branch of an operation, in the style of pyinfra's own operation tests
(pyinfra-testing): the operation, its arguments, the value of the one fact it reads, and
what it must do: the exact commands it yields, or why it does nothing.

A case file (YAML) under ``tests/unit/cases/<module>.<operation>/``::

    description: why this case exists
    kwargs: {...}             # the operation's arguments
    executing: true           # false: decided while preparing (a dry run)
    fact: {...}               # the value of the fact the operation declares
    commands: [...]           # exactly these (chained commands count one each; an upload
                              # reads "upload <dest>: <content>"), or
    commands_start: [...]     # commands beginning so, or
    commands_contain: [...]   # commands containing so (long scripts)
    noop: "..."               # or the reason it gives for doing nothing
    reasons: [...]            # the change reasons it logs, in order (optional)
    error: "..."              # or: it refuses, with a message containing this
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyinfra.api import FileUploadCommand, OperationError, StringCommand

from tests.unit.fakes import run_op

CASES = Path(__file__).parents[1] / "cases"
FILES = sorted(CASES.glob("*/*.yaml"))


def _operation(folder: str) -> Any:
    module, _, name = folder.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Arguments YAML cannot spell: a ``probe`` mapping is a ``ServiceProbe``, a
    ``services`` list holds ``ServiceRelease`` mappings, a ``plan`` is a ``RollbackPlan``,
    a ``manual`` a ``ManualRollback``."""
    from deploys.services.history import RollbackPlan
    from deploys.services.operations import ServiceProbe, ServiceRelease
    from deploys.services.release import ManualRollback

    out = dict(kwargs)
    if isinstance(out.get("probe"), dict):
        out["probe"] = ServiceProbe(**{k: tuple(v) if isinstance(v, list) else v
                                        for k, v in out["probe"].items()})  # fmt: skip
    if isinstance(out.get("services"), list):
        out["services"] = tuple(ServiceRelease(**svc) for svc in out["services"])
    if isinstance(out.get("plan"), dict):
        out["plan"] = RollbackPlan(**out["plan"])
    if isinstance(out.get("manual"), dict):
        out["manual"] = ManualRollback(**out["manual"])
    return out


def _text(command: Any) -> str:
    if isinstance(command, FileUploadCommand):
        return f"upload {command.dest}: {command.src.getvalue()!r}"
    return command.get_raw_value() if isinstance(command, StringCommand) else str(command)


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_operation_case(path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    assert case.get("description"), f"{path}: say why the case exists"
    op = _operation(path.parent.name)
    kwargs = _arguments(case["kwargs"])
    facts = {op.read_of(**kwargs).fact: case["fact"]}
    executing = case.get("executing", True)
    if "error" in case and not executing:
        with pytest.raises(OperationError, match=case["error"]):
            run_op(op, facts, executing=False, **kwargs)
        return
    fake = run_op(op, facts, executing=executing, **kwargs)
    got = [_text(c) for c in fake.commands]
    if "error" in case:
        assert len(got) == 1 and case["error"] in got[0] and got[0].endswith("exit 1"), got
    elif "noop" in case:
        assert got == [], got
        assert fake.noops == [case["noop"]]
    elif "commands" in case:
        assert got == case["commands"]
    elif "commands_start" in case:
        assert len(got) == len(case["commands_start"]), got
        for text, start in zip(got, case["commands_start"], strict=True):
            assert text.startswith(start), (text[:300], start)
    else:
        assert len(got) == len(case["commands_contain"]), got
        for text, part in zip(got, case["commands_contain"], strict=True):
            assert part in text, (text[:300], part)
    if "reasons" in case:
        assert fake.logs == case["reasons"]


def test_every_named_operation_has_its_cases() -> None:
    folders = {p.parent.name for p in FILES}
    for op in (
        "deploys.services.operations.release",
        "deploys.services.operations.release_guard",
        "deploys.services.operations.rollback_target",
        "deploys.services.operations.daemon_reload",
        "deploys.services.operations.system_user",
        "deploys.common.operations.managed_file",
        "deploys.common.operations.kept_file",
        "deploys.packages.operations.apt_packages",
    ):
        assert op in folders, op
