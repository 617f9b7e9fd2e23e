"""deploys.common.speedups: the same results as the pyinfra 3.10 functions they replace."""

from __future__ import annotations

import sys
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
    for module in speedups._POP_USERS:
        monkeypatch.setattr(import_module(module), "pop_global_arguments", ORIGINAL_POP)
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


ORIGINAL_POP = arguments_module.pop_global_arguments


def _inventory_state() -> Any:
    """Hosts whose data sets global arguments at every layer pyinfra reads: the override
    (``--data``), the host, two groups (the later one wins), the inventory's ``all``."""
    from pyinfra.api import Config, Inventory, State

    inventory = Inventory(
        (
            [
                "plain",
                ("host-set", {"_sudo": True, "_env": {"A": "host"}, "_timeout": 9}),
                ("in-groups", {"name": "from data"}),
            ],
            {"_retries": 2},
        ),
        override_data={"_chdir": "/override"},
        first=(["in-groups"], {"_timeout": 3, "_su_user": "first"}),
        second=(["in-groups"], {"_timeout": 4}),
    )
    return State(inventory, Config(SUDO_USER="cfg-user"))


CALLS: list[dict[str, Any]] = [
    {},
    {"_sudo": False, "_timeout": 1, "other": "kept"},
    {"_env": {"B": "kwarg"}, "name": "an op", "_serial": True},
]


@pytest.mark.parametrize("kwargs", CALLS)
@pytest.mark.parametrize("deploy_kwargs", [None, {"_sudo_user": "deployer", "_timeout": 7}])
def test_popped_global_arguments_are_pyinfras(
    kwargs: dict[str, Any], deploy_kwargs: dict[str, Any] | None
) -> None:
    state = _inventory_state()
    for host in state.inventory:
        host.current_deploy_kwargs = deploy_kwargs
        theirs, ours = dict(kwargs), dict(kwargs)
        expected = ORIGINAL_POP(state, host, theirs)
        assert speedups.popped_global_arguments(state, host, ours) == expected
        assert ours == theirs  # the same keys popped, the rest left


def test_popped_global_arguments_copy_the_data_and_refuse_what_pyinfra_refuses() -> None:
    from pyinfra.api.exceptions import ArgumentTypeError

    state = _inventory_state()
    host = state.inventory.get_host("host-set")
    popped, _ = speedups.popped_global_arguments(state, host, {})
    popped["_env"]["A"] = "changed"  # a shallow copy, as HostData gives
    assert host.data._env == {"A": "host"}
    for pop in (ORIGINAL_POP, speedups.popped_global_arguments):
        with pytest.raises(ArgumentTypeError, match="Invalid argument `_timeout`"):
            pop(state, host, {"_timeout": "soon"})


def test_install_replaces_every_import_of_pop_global_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for module in speedups._POP_USERS:
        monkeypatch.setattr(import_module(module), "pop_global_arguments", ORIGINAL_POP)
    monkeypatch.setattr(operation_module, "get_operation_order_from_stack", ORIGINAL_ORDER)
    monkeypatch.setattr(arguments_module, "all_global_arguments", ORIGINAL_ARGUMENTS)
    assert speedups.install() is True
    users = {
        name
        for name, module in sys.modules.items()
        if name.startswith("pyinfra") and getattr(module, "pop_global_arguments", None)
    }
    assert users == set(speedups._POP_USERS)
    for module in speedups._POP_USERS:
        assert import_module(module).pop_global_arguments is speedups.popped_global_arguments


def test_the_comparison_hosts_take_arguments_from_every_layer() -> None:
    """So the comparison above is not between two sets of defaults."""
    state = _inventory_state()
    got = {h.name: ORIGINAL_POP(state, h, {})[0] for h in state.inventory}
    assert got["host-set"]["_sudo"] is True and got["host-set"]["_timeout"] == 9  # host
    assert got["in-groups"]["_timeout"] == 4 and got["in-groups"]["_su_user"] == "first"
    assert got["in-groups"]["name"] == "from data"
    assert got["plain"]["_chdir"] == "/override" and got["plain"]["_retries"] == 2
    assert got["plain"]["_sudo_user"] == "cfg-user"  # the config's default
