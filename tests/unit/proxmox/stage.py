"""The Proxmox stage run in process through pyinfra's API against an emulator: the node as
``@local`` (the API side only), and, when asked, the container's ``@pvelxc`` host beside
it. Shared by the stage's tests (a helper module, not a test module)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.operations import run_ops

from deploys import proxmox
from deploys.inventory import NODE_ROLE, ROLE, SETTINGS_KEY
from deploys.settings import Settings, raw_defaults, validate
from tests.sandbox.pve.emulator import PveEmulator

CONTAINER_HOST = "@pvelxc/egograph-prod"


def stage_settings(
    emu: PveEmulator, tmp_path: Path, *, token: str, secret: str, **overrides: Any
) -> Settings:
    """Settings pointing the stage at ``emu`` with API token ``token`` (its ``secret`` in a
    0600 file), the TUN method 'none' unless ``overrides`` say otherwise."""
    env = tmp_path / "backend.env"
    env.write_text("A=1\n")
    env.chmod(0o600)
    secret_file = tmp_path / "token.secret"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    key = tmp_path / "id.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB test\n")
    data = raw_defaults()
    data.update(
        services=[dict(data["services"][0], env_source={"file": str(env)})],
        pve_host="127.0.0.1",
        pve_port=emu.port,
        pve_token_id=token,
        pve_secret_source={"file": str(secret_file)},
        pve_ca_bundle=str(emu.ca_path),
        pve_task_timeout=30,
        # the API side only: raw edits the conf file over SSH as root, dev is root@pam's
        ct_tun_method="none",
        tailscale_userspace=True,
        ct_ssh_public_keys=[str(key)],
    )
    data.update(overrides)
    return validate(data)


def run_stage(
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    *,
    container: dict[str, Any] | None = None,
    yes: bool = False,
    deploy: Callable[..., None] = proxmox.ensure_container,
) -> tuple[bool, str]:
    """The Proxmox stage through pyinfra's API; (success, everything it said).

    + container: the ``@pvelxc`` host's data, to have it in the inventory
    + yes: as ``pyinfra -y`` (execute without deciding every operation first)
    """
    caplog.clear()
    hosts: list[tuple[str, dict[str, Any]]] = [("@local", {ROLE: NODE_ROLE})]
    if container is not None:
        hosts.append((CONTAINER_HOST, {SETTINGS_KEY: settings, **container}))
    inventory = Inventory((hosts, {}))
    state = State(inventory, Config(), check_for_changes=not yes)
    error = ""
    with caplog.at_level(logging.INFO):
        try:
            connect_all(state)
            add_deploy(state, deploy, settings=settings)
            run_ops(state)
        except Exception as exc:  # pyinfra/an operation gave up: the reason is the message
            error = f"{type(exc).__name__}: {exc}"
        finally:
            disconnect_all(state)
    results = [state.get_results_for_host(h) for h in inventory]
    ok = not error and all(r.error_ops == 0 for r in results) and not state.failed_hosts
    return ok, "\n".join([error, *(r.getMessage() for r in caplog.records)])
