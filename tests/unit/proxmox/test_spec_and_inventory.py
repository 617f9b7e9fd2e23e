"""The container spec, its diff against PVE's config, the Proxmox settings checks, the
inventory's node + container hosts, and the lazy connector's registration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploys.inventory import NODE_ROLE, ROLE, pyinfra_keys, settings_part, with_proxmox
from deploys.proxmox import spec
from deploys.settings import Settings, SettingsError, raw_defaults, validate

PROJECT = Path(__file__).resolve().parents[3]


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    env = tmp_path / "backend.env"
    env.write_text("A=1\n")
    key = tmp_path / "id.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB test\n")
    monkeypatch.setenv("PVE_TOKEN_SECRET", "s3cret-value")
    data = raw_defaults()
    services = [dict(data["services"][0], env_source={"file": str(env)})]
    data.update(services=services, ct_ssh_public_keys=[str(key)])
    return data


def settings(base: dict[str, Any], **kw: Any) -> Settings:
    # As the inventory validates: pyinfra's own keys (ssh_user ...) are not settings.
    return validate(settings_part({**base, **kw}, pyinfra_keys()))


def container(base: dict[str, Any], **kw: Any) -> spec.ContainerSpec:
    return spec.ContainerSpec.from_settings(settings(base, **kw))


def test_create_params_follow_the_runbook(base: dict[str, Any]) -> None:
    p = spec.create_params(container(base, pve_host="pve.lan"), 123)
    assert p["cores"] == 2 and p["memory"] == 3072 and p["swap"] == 1024
    assert p["rootfs"] == "local-lvm:40"
    assert p["net0"] == "name=eth0,bridge=vmbr0,ip=dhcp"
    assert p["unprivileged"] is True and p["features"] == "nesting=1" and p["onboot"] is True
    assert p["ostemplate"] == "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"
    assert p["ssh-public-keys"].startswith("ssh-ed25519 ")
    assert p["start"] is False  # TUN is patched before the first start


def test_config_diff_ignores_what_pve_fills_in(base: dict[str, Any]) -> None:
    s = container(base, pve_host="pve.lan")
    config = {
        "hostname": "egograph-prod", "cores": 2, "memory": 3072, "swap": 1024, "onboot": 1,
        "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp,type=veth",
        "features": "keyctl=1,nesting=1", "unprivileged": 1,
    }  # fmt: skip
    assert spec.config_changes(s, config) == {}


def test_config_diff_puts_only_differences(base: dict[str, Any]) -> None:
    s = container(base, pve_host="pve.lan", ct_ip="10.0.0.5/24", ct_gw="10.0.0.1")
    config = {
        "hostname": "egograph-prod", "cores": 4, "memory": 3072, "swap": 1024,
        "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp,type=veth",
    }  # fmt: skip
    changes = spec.config_changes(s, config)
    assert changes == {
        "cores": 2,
        "onboot": 1,
        "net0": "name=eth0,bridge=vmbr0,gw=10.0.0.1,hwaddr=BC:24:11:AA:BB:CC,ip=10.0.0.5/24,"
        "type=veth",
        "features": "nesting=1",
    }


def test_tun_dev_key_and_address() -> None:
    assert spec.tun_dev_key({"dev0": "/dev/dri/card0", "dev1": "path=/dev/net/tun,mode=0666"}) == (
        "dev1"
    )
    assert spec.free_dev_key({"dev0": "/dev/x"}) == "dev1"
    ifaces = [
        {"name": "lo", "inet": "127.0.0.1/8"},
        {"name": "eth0", "ip-addresses": [{"ip-address": "10.1.2.3", "ip-address-type": "inet"}]},
    ]
    assert spec.eth0_address(ifaces) == "10.1.2.3"
    assert spec.eth0_address(None) is None
    assert spec.pending_keys(
        [{"key": "cores", "value": 2}, {"key": "features", "pending": "x"}]
    ) == ["features"]


def test_proxmox_settings_checked_only_with_a_host(
    base: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PVE_TOKEN_SECRET")
    validate({**base, "ct_tun_method": "dev"})  # no Proxmox stage: nothing to check
    with pytest.raises(SettingsError) as info:
        validate({**base, "pve_host": "pve.lan", "ct_tun_method": "dev", "ct_gw": "10.0.0.1"})
    text = str(info.value)
    assert "PVE_TOKEN_SECRET is unset" in text
    assert "'dev' needs a root@pam password login" in text
    assert "ct_gw: a gateway needs a static ct_ip" in text
    assert "s3cret" not in text


def test_no_tun_needs_userspace_tailscale(base: dict[str, Any]) -> None:
    with pytest.raises(SettingsError, match="tailscale_userspace"):
        validate({**base, "pve_host": "pve.lan", "ct_tun_method": "none"})
    validate({**base, "pve_host": "pve.lan", "ct_tun_method": "none", "tailscale_userspace": True})


def test_inventory_without_proxmox_is_the_container_only(base: dict[str, Any]) -> None:
    assert with_proxmox("egograph-prod", {}, settings(base)) == [("egograph-prod", {})]


def test_inventory_with_proxmox_has_the_node_first(base: dict[str, Any]) -> None:
    data = {"pve_host": "pve.lan", "pve_ssh_port": 2222, "ssh_user": "root"}
    hosts = with_proxmox("egograph-prod", data, settings(base, **data))
    (node, node_data), (ct, ct_data) = hosts
    assert node == "pve.lan" and node_data[ROLE] == NODE_ROLE
    assert node_data["ssh_port"] == 2222 and node_data["ssh_strict_host_key_checking"] == "yes"
    assert "ssh_user" in node_data and node_data["ssh_user"] == "root"
    assert ct == "@pvelxc/egograph-prod" and ct_data == data
    # API-only TUN methods need no SSH to the node
    data = {"pve_host": "pve.lan", "ct_tun_method": "none", "tailscale_userspace": True}
    assert with_proxmox("x", data, settings(base, **data))[0][0] == "@local"


def test_connector_is_registered() -> None:
    from pyinfra.api.connectors import get_execution_connectors

    from deploys.proxmox.connector import PveContainerConnector

    assert get_execution_connectors()["pvelxc"] is PveContainerConnector
    names = list(PveContainerConnector.make_names_data("egograph-prod"))
    assert names == [("@pvelxc/egograph-prod", {}, ["@pvelxc"])]
