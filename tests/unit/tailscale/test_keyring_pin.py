"""An empty ``tailscale_keyring_sha256`` stops a deploy while it is loaded: before any
operation runs (the packages step comes first and would otherwise change the target)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, OperationError, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.deploy import add_deploy

from deploys import packages, tailscale
from deploys.settings import raw_defaults, validate


def settings(tmp_path: Path, pin: str) -> object:
    env = tmp_path / "backend.env"
    env.write_text("A=1\n")
    env.chmod(0o600)
    data = raw_defaults()
    data.update(
        services=[dict(data["services"][0], env_source={"file": str(env)})],
        tailscale_keyring_sha256=pin,
    )
    return validate(data)


def load(tmp_path: Path, pin: str) -> State:
    """Load the packages step and then Tailscale's, as ``container.converge`` orders them,
    as ``pyinfra -y`` does: no operation is decided (nothing is read from this machine)."""
    state = State(Inventory(([("@local", {})], {})), Config(), check_for_changes=False)
    connect_all(state)
    try:
        s = settings(tmp_path, pin)
        add_deploy(state, packages.install_packages, settings=s)
        add_deploy(state, tailscale.join_tailnet, settings=s)
    finally:
        disconnect_all(state)
    return state


def test_an_empty_pin_stops_the_deploy_while_it_is_loaded_saying_how_to_pin(
    tmp_path: Path,
) -> None:
    with pytest.raises(OperationError) as refused:
        load(tmp_path, "")
    message = str(refused.value)
    assert message.startswith("tailscale_keyring_sha256 is empty: the deploy installs Tailscale")
    assert "nothing was changed" in message
    assert "sha256sum FILE" in message and "gpg --show-keys FILE" in message


def test_a_pinned_keyring_loads_both_steps(tmp_path: Path) -> None:
    state = load(tmp_path, "a" * 64)
    names = [sorted(state.op_meta[h].names)[0] for h in state.get_op_order()]
    assert any("tailscale" in n.lower() for n in names), names
