"""deploys.common.speedups: the same results as the pyinfra 3.10 functions they replace."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyinfra
import pytest
from pyinfra.api import util

from deploys.common import speedups

operation_module = import_module("pyinfra.api.operation")
arguments_module = import_module("pyinfra.api.arguments")
ORIGINAL_ORDER = util.get_operation_order_from_stack
ORIGINAL_ARGUMENTS = arguments_module.all_global_arguments

# A deploy file as pyinfra runs it (exec of its source under its relative name), calling an
# operation through a helper, the way deploys/prod.py calls the concerns' @deploy functions.
DEPLOY = """\
def helper():
    x = 1
    return probe()


result = helper()
"""


def orders_from(tmp_path: Path, deploy_filename: str | None) -> tuple[list[int], list[int]]:
    state = SimpleNamespace(current_deploy_filename=deploy_filename, current_op_file_number=7)

    def probe() -> tuple[list[int], list[int]]:
        return ORIGINAL_ORDER(state), speedups.operation_order_from_stack(state)  # type: ignore[arg-type]

    namespace: dict[str, Any] = {"probe": probe}
    (tmp_path / "deploy.py").write_text(DEPLOY)
    exec(compile(DEPLOY, "deploy.py", "exec"), namespace)
    return namespace["result"]


@pytest.mark.parametrize("is_cli", [True, False])
@pytest.mark.parametrize("deploy_filename", ["deploy.py", None, "not-on-the-stack.py"])
def test_operation_order_is_pyinfras(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, is_cli: bool, deploy_filename: str | None
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pyinfra, "is_cli", is_cli)
    original, fast = orders_from(tmp_path, deploy_filename)
    assert fast == original
    if deploy_filename == "deploy.py":
        # the file number, then the calls from the deploy file down: result = helper(),
        # return probe(), and probe's own line
        assert original[: 3 if is_cli else 2] == ([7, 6, 3] if is_cli else [6, 3])


def test_global_arguments_are_pyinfras_and_a_new_list_each_time() -> None:
    all_global_arguments = speedups.evaluated_global_arguments()
    assert all_global_arguments() == ORIGINAL_ARGUMENTS()
    first = all_global_arguments()
    first.clear()
    assert all_global_arguments() == ORIGINAL_ARGUMENTS()


def test_the_installed_pyinfra_is_a_verified_one() -> None:
    """The comparisons above ran on this version: list it (after they pass) to use them."""
    assert pyinfra.__version__ in speedups.VERIFIED


def test_install_replaces_both_for_verified_versions_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # monkeypatch restores pyinfra's own functions after the test
    monkeypatch.setattr(operation_module, "get_operation_order_from_stack", ORIGINAL_ORDER)
    monkeypatch.setattr(arguments_module, "all_global_arguments", ORIGINAL_ARGUMENTS)
    monkeypatch.setattr(pyinfra, "__version__", "3.10.1")
    with caplog.at_level("INFO", logger="pyinfra"):
        assert speedups.install() is False
    assert "pyinfra 3.10.1 is not one the deploy's speedups were verified on" in caplog.text
    assert operation_module.get_operation_order_from_stack is ORIGINAL_ORDER
    monkeypatch.setattr(pyinfra, "__version__", "3.10.0")
    assert speedups.install() is True
    assert operation_module.get_operation_order_from_stack is speedups.operation_order_from_stack
    assert arguments_module.all_global_arguments is not ORIGINAL_ARGUMENTS
    assert arguments_module.all_global_arguments() == ORIGINAL_ARGUMENTS()
