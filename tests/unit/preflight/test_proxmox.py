"""The Proxmox checks of ``egodeploy preflight`` against the PVE API emulator (whose
permission checks follow PVE's code), and the node probe's one command run by a real
``sh``."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

from deploys.preflight.checks import FAIL, PASS
from deploys.preflight.proxmox import NodeProbe, api_check, privileges_check, template_check
from deploys.proxmox.access import Pve
from deploys.proxmox.client import ContainerRef
from deploys.proxmox.facts import PveConfFile
from deploys.proxmox.hostkey import NodeSsh
from deploys.proxmox.view import ContainerView
from tests.sandbox.pve.fixtures import DEPLOY_PRIVS, ROOT_PASSWORD
from tests.unit.preflight.test_checks import ca_file
from tests.unit.proxmox.stage import stage_settings

TOKEN = "deploy@pve!egograph"
SECRET = "0b6c4a3e-preflight-0000-4000-8000-000000000001"


def node(start_emulator: Any, *, without: str = "") -> Any:
    privs = [p for p in DEPLOY_PRIVS if p != without]
    return start_emulator(
        users={"root@pam": {"password": ROOT_PASSWORD}},
        tokens={TOKEN: {"secret": SECRET, "privs": {"/": privs}}},
        templates=(),  # an empty node: the template must be downloaded
    )


def view(settings: Any, probe: Any = None) -> ContainerView:
    return ContainerView(Pve.from_settings(settings), probe or NodeProbe(None, 5, None), None)  # type: ignore[arg-type]


def test_the_api_answers_with_tls_verified_and_an_empty_node_holds_no_template(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = node(start_emulator)
    settings = stage_settings(emu, tmp_path, token=TOKEN, secret=SECRET)
    api = api_check(Pve.from_settings(settings), settings)
    assert api.status == PASS, api
    assert f"TLS verified against {emu.ca_path}" in api.detail
    ct = view(settings)
    assert privileges_check(ct, settings).status == PASS
    template = template_check(ct, settings)
    assert template.status == PASS and "is not on local yet: the deploy downloads it" in (
        template.detail
    )


def test_another_ca_fails_the_api_check_naming_the_ca_setting(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = node(start_emulator)
    settings = stage_settings(emu, tmp_path, token=TOKEN, secret=SECRET,
                              pve_ca_bundle=str(ca_file(tmp_path / "other-ca.pem")))  # fmt: skip
    api = api_check(Pve.from_settings(settings), settings)
    assert api.status == FAIL and api.setting == "pve_ca_bundle", api
    assert "certificate verify failed" in api.detail
    assert "/etc/pve/pve-root-ca.pem" in api.fix
    assert SECRET not in api.detail + api.fix


def test_a_token_missing_one_privilege_is_named_with_its_path_and_nothing_is_asked_of_pve(
    start_emulator: Any, tmp_path: Path
) -> None:
    emu = node(start_emulator, without="SDN.Use")
    settings = stage_settings(emu, tmp_path, token=TOKEN, secret=SECRET)
    check = privileges_check(view(settings), settings)
    assert check.status == FAIL and check.setting == "pve_token_id"
    assert (
        f"the API token {TOKEN} (pve_token_id) is missing on /sdn/zones/localnetwork/vmbr0: "
        "SDN.Use (needed for: net0 on vmbr0)"
    ) in check.detail
    assert "README's roles" in check.fix
    assert emu.tasks == {} and emu.vmids() == []
    assert SECRET not in check.detail


RAN: list[list[str]] = []


class LocalNode(NodeSsh):
    """The node's SSH command run by this machine's ``sh`` (what sshd would run)."""

    def run(self, argv: list[str], timeout: float) -> str:
        RAN.append(argv)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True)
        return done.stdout


def local_node(tmp_path: Path, *, pct: bool = True) -> LocalNode:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    if pct:
        (bindir / "pct").write_text("#!/bin/sh\nexit 0\n")
        (bindir / "pct").chmod(0o755)
    return LocalNode(host="node", port=22, user="root", key="", known_hosts="")


def test_the_node_probe_reads_pct_the_conf_dir_and_the_conf_file_in_one_command(
    tmp_path: Path, monkeypatch: Any
) -> None:
    conf_dir = tmp_path / "lxc"
    conf_dir.mkdir()
    (conf_dir / "100.conf").write_text("arch: amd64\ncores: 2\n")
    (conf_dir / "100.egograph-restart").write_text("TUN lines added\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    RAN.clear()
    probe = NodeProbe(local_node(tmp_path), 5, str(conf_dir))
    check = probe.probe(ContainerRef("pve", 100, "running"))
    assert check.status == PASS and f"{conf_dir} writable" in check.detail, check
    assert len(RAN) == 1
    path = f"{conf_dir}/100.conf"
    conf = probe.get_fact(PveConfFile, path=path, marker=f"{conf_dir}/100.egograph-restart")
    assert conf["exists"] and conf["text"] == "arch: amd64\ncores: 2\n"
    assert conf["restart"] == ["TUN lines added"]
    assert len(RAN) == 1  # the view's read is the probe's output


def test_the_node_probe_fails_without_pct_a_conf_dir_or_ssh(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    no_pct = NodeProbe(local_node(tmp_path, pct=False), 5, None).probe(None)
    assert no_pct.status == FAIL and "has no pct on its PATH" in no_pct.detail
    no_dir = NodeProbe(local_node(tmp_path), 5, str(tmp_path / "missing")).probe(None)
    assert no_dir.status == FAIL and no_dir.setting == "pve_conf_dir"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens once the socket closes
    ssh = NodeSsh(host="127.0.0.1", port=closed, user="root", key="",
                  known_hosts=str(tmp_path / "known_hosts"))  # fmt: skip
    (tmp_path / "known_hosts").write_text("")
    down = NodeProbe(ssh, 5, None).probe(None)
    assert down.status == FAIL and down.setting == "pve_ssh_host"
    assert f"the node's SSH (root@127.0.0.1:{closed})" in down.detail
    assert "pve_ssh_known_hosts" in down.fix
