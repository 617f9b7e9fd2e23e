"""deploys/proxmox/operations.py: the stage in process against the emulator (FakeBackend),
the node as ``@local`` (the raw TUN method edits the emulator's conf files locally).

- ct_running waits for the container host's SSH port, not 22
- the restart a TUN change owes survives a run that dies before it (raw and dev)
- preparing against a container this run creates: every node operation is a change, and
  none says "noop"
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.deploy import add_deploy

from deploys import proxmox
from deploys.inventory import NODE_ROLE, ROLE
from deploys.proxmox import access
from deploys.proxmox.connector import PveContainerConnector
from tests.sandbox.pve.emulator import PveEmulator
from tests.unit.proxmox.stage import CONTAINER_HOST, run_stage, stage_settings

ROOT_PASSWORD = "ops-canary-root-password-3c19"
TUN_OP = "Proxmox | CT egograph-prod /dev/net/tun"
RUNNING_OP = "Proxmox | CT egograph-prod running with its config in effect"


@pytest.fixture
def ports(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The SSH ports waited for (FakeBackend's addresses are no machines: each is open)."""
    asked: list[int] = []

    def port_open(address: str, port: int = 22, timeout: float = 2.0) -> bool:
        asked.append(port)
        return True

    monkeypatch.setattr(access, "ssh_port_open", port_open)
    return asked


def settings(emu: PveEmulator, tmp_path: Path, creds: Any, **overrides: Any) -> Any:
    return stage_settings(
        emu, tmp_path, token=creds.DEPLOY_TOKEN, secret=creds.DEPLOY_SECRET, **overrides
    )


def root_settings(emu: PveEmulator, tmp_path: Path, **overrides: Any) -> Any:
    """A root@pam password login (``dev`` is root@pam's alone)."""
    password = tmp_path / "root.password"
    password.write_text(ROOT_PASSWORD + "\n")
    password.chmod(0o600)
    return stage_settings(
        emu, tmp_path, token="", secret="-", pve_user="root@pam",
        pve_secret_source={"file": str(password)}, **overrides,
    )  # fmt: skip


def reboots(emu: PveEmulator) -> list[str | None]:
    return [t.exitstatus for t in emu.tasks.values() if t.type == "vzreboot"]


def test_ct_running_waits_on_the_container_hosts_ssh_port(
    emulator: PveEmulator, tmp_path: Path, creds: Any, ports: list[int],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    s = settings(emulator, tmp_path, creds)
    ok, said = run_stage(s, caplog, container={"ssh_port": 2222})
    assert ok, said
    assert [t.type for t in emulator.tasks.values()] == ["vzcreate", "vzstart"]
    # the node's start waited for the port the container host connects on
    assert ports and set(ports) == {2222}, ports
    # without a container host in the inventory: SSH's own port
    ports.clear()
    ok, said = run_stage(s, caplog)
    assert ok and ports == [], said  # running: nothing waited for


def test_the_connector_reads_its_ssh_port_from_the_host_data(tmp_path: Path, creds: Any) -> None:
    inventory = Inventory(([(CONTAINER_HOST, {"ssh_port": 2200}), ("@pvelxc/other", {})], {}))
    State(inventory, Config())
    ported, default = (h.connector for h in inventory)
    assert isinstance(ported, PveContainerConnector) and ported.ssh_port == 2200
    assert isinstance(default, PveContainerConnector) and default.ssh_port == 22
    # what the node's operations see of it (access sits a layer below the connector)
    assert isinstance(ported, access.ContainerHost)


def test_a_raw_restart_owed_by_a_dead_run_is_made_by_the_next(
    emulator: PveEmulator, tmp_path: Path, creds: Any, ports: list[int],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    assert run_stage(settings(emulator, tmp_path, creds), caplog)[0]  # no TUN
    (vmid,) = emulator.vmids()
    raw = settings(emulator, tmp_path, creds, ct_tun_method="raw",
                   pve_conf_dir=str(emulator.conf_dir))  # fmt: skip
    emulator.inject_task_fault("vzreboot", fail="injected: reboot lost")
    ok, said = run_stage(raw, caplog, yes=True)
    assert not ok and "injected: reboot lost" in said
    marker = emulator.conf_dir / f"{vmid}.egograph-restart"
    assert marker.read_text() == "TUN lines added\n"
    assert not emulator.backend.tun_present(vmid)  # type: ignore[attr-defined]

    ok, said = run_stage(raw, caplog, yes=True)
    assert ok, said
    assert reboots(emulator) == ["injected: reboot lost", "OK"]
    assert emulator.backend.tun_present(vmid)  # type: ignore[attr-defined]
    assert not marker.exists()
    ok, said = run_stage(raw, caplog, yes=True)
    assert ok and reboots(emulator) == ["injected: reboot lost", "OK"], said


def test_a_dev_restart_owed_by_a_dead_run_is_made_by_the_next(
    start_emulator: Any, tmp_path: Path, ports: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    emu = start_emulator(users={"root@pam": {"password": ROOT_PASSWORD}})
    assert run_stage(root_settings(emu, tmp_path), caplog)[0]  # no TUN
    (vmid,) = emu.vmids()
    dev = root_settings(emu, tmp_path, ct_tun_method="dev")
    emu.inject_task_fault("vzreboot", fail="injected: reboot lost")
    ok, said = run_stage(dev, caplog, yes=True)
    assert not ok and "injected: reboot lost" in said
    conf = emu.load_conf(vmid)
    # the record beside the deploy's own marker (PVE keeps tags sorted, ';'-joined)
    assert conf["dev0"] == "/dev/net/tun", conf
    assert conf["tags"] == "egograph-deploy;egograph-restart", conf
    assert not emu.backend.tun_present(vmid)  # type: ignore[attr-defined]

    ok, said = run_stage(dev, caplog, yes=True)
    assert ok, said
    assert reboots(emu) == ["injected: reboot lost", "OK"]
    assert emu.backend.tun_present(vmid)  # type: ignore[attr-defined]
    assert emu.load_conf(vmid)["tags"] == "egograph-deploy"  # the record gone, the marker kept
    assert ROOT_PASSWORD not in said


def test_preparing_against_a_container_this_run_creates_is_all_change(
    emulator: PveEmulator, tmp_path: Path, creds: Any, caplog: pytest.LogCaptureFixture
) -> None:
    s = settings(emulator, tmp_path, creds, ct_tun_method="raw",
                 pve_conf_dir=str(emulator.conf_dir))  # fmt: skip
    state = State(Inventory(([("@local", {ROLE: NODE_ROLE})], {})), Config())
    state.print_noop_info = True
    with caplog.at_level(logging.DEBUG):
        connect_all(state)
        try:
            add_deploy(state, proxmox.ensure_container, settings=s)  # prepares: a dry run
        finally:
            disconnect_all(state)
    (node,) = state.inventory
    changes = {
        name: state.ops[node][op_hash].operation_meta.will_change
        for op_hash in state.get_op_order()
        for name in state.op_meta[op_hash].names
    }
    template = "Proxmox | Template ubuntu-24.04-standard_24.04-2_amd64.tar.zst on local"
    assert changes == {
        template: False,  # the emulator has it
        "Proxmox | CT egograph-prod exists with the runbook's spec": True,
        f"{TUN_OP} (raw)": True,
        RUNNING_OP: True,
    }
    noops = [r.getMessage() for r in caplog.records if "noop:" in r.getMessage()]
    assert len(noops) == 1 and noops[0].endswith(
        "noop: local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst is present"
    ), noops
    assert emulator.tasks == {} and emulator.vmids() == []
