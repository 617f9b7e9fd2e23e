"""From an empty (emulated) Proxmox node to a healthy service in one pyinfra run.

The node is the PVE API emulator backed by real sandbox containers, plus an sshd standing in
for the node's SSH (the raw TUN patch edits the emulator's conf files through it). The deploy
runs as a user runs it (`pyinfra -y inventory.py deploys/prod.py`); assertions read
pyinfra's JSON report, the emulator's state and the container itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.app import site as app_site
from tests.sandbox.pve.deploy_site import DeploySite
from tests.sandbox.runner import PyinfraRun, egodeploy, pyinfra
from tests.sandbox.runner import drift as run_drift

pytestmark = pytest.mark.e2e

PROXMOX_OPS = (
    "Proxmox | Template ubuntu-24.04-standard_24.04-2_amd64.tar.zst on local",
    "Proxmox | CT egograph-prod exists with the runbook's spec",
    "Proxmox | CT egograph-prod running with its config in effect",
)


def ok(run: PyinfraRun) -> PyinfraRun:
    assert run.returncode == 0, run.output[-4000:]
    return run


def test_one_command_from_an_empty_node(empty_node: Callable[..., DeploySite]) -> None:
    s = empty_node()
    hosts = s.hosts(ct_tun_method="raw")

    # --dry on the empty node: exit 0, nothing created, the plan says everything would change
    dry = ok(pyinfra(hosts, "--dry", "--json"))
    would = dry.changed_ops()
    for op in (*PROXMOX_OPS, "Proxmox | CT egograph-prod /dev/net/tun (raw)"):
        assert op in would, would
    for op in ("System packages", "uv sync", "Services | Unit", "egograph-backend enabled"):
        assert any(op in name for name in would), (op, would)
    state = s.state()
    assert state["containers"] == {} and state["tasks"] == []
    assert list(s.node.conf_dir.glob("*.conf")) == []
    # egodeploy status: the container absent (from the API), no command sent; exit 2
    code, absent, commands = status(hosts)
    assert code == 2 and absent["container"]["state"] == "absent" and commands == 0, absent

    # one run: template, container, TUN patch, start, the whole in-container deploy
    first = ok(pyinfra(hosts, "-y", "--json"))
    assert first.totals()["error"] == 0
    assert set(PROXMOX_OPS) <= set(first.changed_ops())
    conf = (s.node.conf_dir / "100.conf").read_text()
    top = conf.split("\n[", 1)[0]
    assert "lxc.cgroup2.devices.allow: c 10:200 rwm" in top
    assert "lxc.mount.entry: /dev/net/tun dev/net/tun none bind,create=file" in top
    assert "unprivileged: 1" in conf and "features: nesting=1" in conf
    assert s.backend.tun_present(100)
    assert s.health()["status"] == "ok"
    types = [t["type"] for t in s.state()["tasks"]]
    assert types == ["download", "vzcreate", "vzstart"], types  # no restart was needed

    # the second run and a dry run change nothing
    second = ok(pyinfra(hosts, "-y", "--json"))
    assert second.totals()["success"] == 0, second.changed_ops()
    again = ok(pyinfra(hosts, "--dry", "--json"))
    assert again.changed_ops() == []
    assert [t["type"] for t in s.state()["tasks"]] == types
    assert app_site.CANARY not in dry.output + first.output + second.output + again.output

    # drift on the node side: config changed behind the deploy's back, TUN lines gone
    assert drift(hosts)[0] == 0
    conf_file = s.node.conf_dir / "100.conf"
    conf_file.write_text(conf_file.read_text().replace("memory: 3072", "memory: 2048", 1))
    code, report = drift(hosts)
    assert code == 2 and PROXMOX_OPS[1] in drifted(report), report
    ok(pyinfra(hosts, "-y", "--json"))
    assert "memory: 3072" in conf_file.read_text()
    conf_file.write_text(
        "".join(
            line
            for line in conf_file.read_text().splitlines(keepends=True)
            if not line.startswith("lxc.mount.entry:")
        )
    )
    code, report = drift(hosts)
    assert code == 2 and "Proxmox | CT egograph-prod /dev/net/tun (raw)" in drifted(report), report
    ok(pyinfra(hosts, "-y", "--json"))
    assert drift(hosts)[0] == 0
    assert s.backend.tun_present(100) and s.health()["status"] == "ok"

    # egodeploy logs reaches the container the way the deploy does (@pvelxc: found through
    # the API, then SSH with the host's trust); the node runs no service and is skipped
    logs = egodeploy(hosts, "logs", "-n", "3")
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert len(lines) == 3 and all(ln.startswith("[@pvelxc/egograph-prod] ") for ln in lines), lines

    # egodeploy status: the container as the API shows it, the rest in one command
    code, shown, commands = status(hosts)
    assert code == 0 and commands == 1, shown
    assert shown["container"] == {
        "node": "pve",
        "vmid": 100,
        "state": "running",
        "cores": 2,
        "memory_mb": 3072,
    }
    assert shown["release"]["commit"] and shown["services"][0]["healthy"]


def status(hosts: Path) -> tuple[int, dict[str, Any], int]:
    """``egodeploy status --json``: exit code, the container host's report, remote commands."""
    proc = egodeploy(hosts, "status", "--json", "--show-commands")
    report = json.loads(proc.stdout)
    assert list(report["hosts"]) == ["@pvelxc/egograph-prod"], report
    commands = sum(1 for line in proc.stderr.splitlines() if ">>> " in line)
    return proc.returncode, report["hosts"]["@pvelxc/egograph-prod"], commands


def drift(hosts: Path) -> tuple[int, dict[str, Any]]:
    code, report, _ = run_drift(hosts)
    return code, report


def drifted(report: dict[str, Any]) -> set[str]:
    return {c["operation"] for changes in report["hosts"].values() for c in changes}


def test_no_tun_then_raw_patch_restarts_once(empty_node: Callable[..., DeploySite]) -> None:
    s = empty_node()
    first = ok(pyinfra(s.hosts(ct_tun_method="none", tailscale_userspace=True), "-y", "--json"))
    assert first.totals()["error"] == 0
    assert not s.backend.tun_present(100)
    assert "lxc." not in (s.node.conf_dir / "100.conf").read_text()

    # switching to raw on the running container: the patch over SSH and one restart, no more
    hosts = s.hosts(ct_tun_method="raw", tailscale_userspace=True)
    dry = ok(pyinfra(hosts, "--dry", "--json"))
    assert sorted(dry.changed_ops()) == sorted(
        [
            "Proxmox | CT egograph-prod /dev/net/tun (raw)",
            "Proxmox | CT egograph-prod running with its config in effect",
        ]
    )
    patched = ok(pyinfra(hosts, "-y", "--json"))
    assert sorted(patched.changed_ops()) == sorted(dry.changed_ops())
    assert s.backend.tun_present(100)
    assert [t["type"] for t in s.state()["tasks"]].count("vzreboot") == 1
    assert s.health()["status"] == "ok"
    assert ok(pyinfra(hosts, "-y", "--json")).totals()["success"] == 0


def test_a_restart_owed_by_a_dead_run_is_made_by_the_next(
    empty_node: Callable[..., DeploySite],
) -> None:
    s = empty_node()
    ok(pyinfra(s.hosts(ct_tun_method="none", tailscale_userspace=True), "-y", "--json"))
    assert not s.backend.tun_present(100)

    # the run patches TUN into the running container, then dies before its restart (PVE
    # refuses the reboot task): the patch is in, the device is not, the restart is owed
    hosts = s.hosts(ct_tun_method="raw", tailscale_userspace=True)
    s.node.admin("faults", "POST", {"task_type": "vzreboot", "fail": "injected: reboot lost"})
    died = pyinfra(hosts, "-y", "--json")
    assert died.returncode != 0, died.output[-4000:]
    assert "injected: reboot lost" in died.output
    conf = s.node.conf_dir / "100.conf"
    assert "lxc.mount.entry: /dev/net/tun" in conf.read_text().split("\n[", 1)[0]
    marker = s.node.conf_dir / "100.egograph-restart"
    assert marker.read_text() == "TUN lines added\n"
    assert not s.backend.tun_present(100)
    reboots = [t for t in s.state()["tasks"] if t["type"] == "vzreboot"]
    assert [t["exitstatus"] for t in reboots] == ["injected: reboot lost"]

    # the next run finds the conf patched (nothing to add) and makes the restart it owes
    dry = ok(pyinfra(hosts, "--dry", "--json"))
    assert dry.changed_ops() == ["Proxmox | CT egograph-prod running with its config in effect"]
    rerun = ok(pyinfra(hosts, "-y", "--json"))
    assert "Proxmox | CT egograph-prod /dev/net/tun (raw)" not in rerun.changed_ops()
    assert "Proxmox | CT egograph-prod running with its config in effect" in rerun.changed_ops()
    reboots = [t for t in s.state()["tasks"] if t["type"] == "vzreboot"]
    assert [t["exitstatus"] for t in reboots] == ["injected: reboot lost", "OK"]
    assert s.backend.tun_present(100)
    assert not marker.exists()
    assert s.health()["status"] == "ok"
    # and then nothing is owed
    assert ok(pyinfra(hosts, "-y", "--json")).totals()["success"] == 0


def test_dev_passthrough_with_a_root_ticket(empty_node: Callable[..., DeploySite]) -> None:
    s = empty_node()
    hosts = s.hosts(ct_tun_method="dev")
    first = ok(pyinfra(hosts, "-y", "--json"))
    assert "Proxmox | CT egograph-prod /dev/net/tun (dev)" in first.changed_ops()
    assert "dev0: /dev/net/tun" in (s.node.conf_dir / "100.conf").read_text()
    assert s.backend.tun_present(100)
    assert s.health()["status"] == "ok"
    assert ok(pyinfra(hosts, "--dry", "--json")).changed_ops() == []
