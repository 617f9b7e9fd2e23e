"""``deploys/destroy.py`` against the emulated Proxmox node (the API emulator backed by real
sandbox containers): it destroys the container the deploy created, and only that one.

The container is made by the deploy itself (the node's stage of ``deploys/prod.py``), which
tags it ``egograph-deploy``; a second container, made through the API as root@pam without
the tag, stands for one the deploy did not create. Assertions read pyinfra's JSON report,
the emulator's state and the sandbox's containers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import site
from tests.sandbox.pve import site as pve_site
from tests.sandbox.pve.sandbox_backend import SandboxBackend
from tests.sandbox.runner import PyinfraRun, pyinfra
from tests.sandbox.runner import drift as run_drift

pytestmark = pytest.mark.e2e

DESTROY = "Proxmox destroy | CT egograph-prod destroyed"
UBUNTU = "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"


class Node:
    def __init__(self, tmp: Path, env: Path) -> None:
        prefix = f"d{os.getpid() % 1000}x"
        self.node = pve_site.start_node(tmp / f"pve-{prefix}", prefix=prefix)
        self.backend = SandboxBackend(prefix)
        self.tmp, self.env = tmp, env

    def hosts(self, **overrides: Any) -> Path:
        # no TUN and no tailnet: the node's stage is all this test needs of the deploy
        data = {
            **site.settings(self.env),
            **pve_site.settings(self.node, ct_tun_method="none", **overrides),
            "tailscale_enabled": False,
        }
        # a file per set of overrides: an earlier one stays what it was
        name = "-".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "hosts"
        return site.write_hosts_file(self.tmp / f"{name}.json", [("egograph-prod", data)])

    def containers(self) -> dict[str, Any]:
        return dict(self.node.admin("state")["containers"])


@pytest.fixture
def node(sandbox: None, secret_env: Path, tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path, secret_env)
    yield n
    n.backend.tear_down(n.node)


def ok(run: PyinfraRun) -> PyinfraRun:
    assert run.returncode == 0, run.output[-4000:]
    return run


def test_destroy_takes_only_the_container_the_deploy_created(node: Node) -> None:
    hosts = node.hosts()
    # the deploy creates the container: the node's stage only (--limit), it boots and answers
    ok(pyinfra(hosts, "-y", "--json", "--limit", "@local"))
    conf = node.node.api("/nodes/pve/lxc/100/config")
    assert conf["tags"] == "egograph-deploy", conf
    assert f"egograph-deploy.template: {UBUNTU}" in conf["description"], conf
    assert node.backend.status(100) == "running"

    # one it did not create: made through the API by root@pam, not tagged by the deploy
    upid = node.node.api(
        "/nodes/pve/lxc", "POST", vmid=150, ostemplate=UBUNTU, hostname="someone-else",
        rootfs="local-lvm:8", net0="name=eth0,bridge=vmbr0,ip=dhcp", unprivileged=1,
        tags="prod",
    )  # fmt: skip
    wait_task(node, upid)
    assert sorted(node.containers()) == ["100", "150"]
    for by in ({"ct_hostname": "someone-else"}, {"ct_vmid": 150, "ct_hostname": "someone-else"}):
        foreign = node.hosts(**by)
        for args in (("--dry",), ("-y",)):
            refused = pyinfra(foreign, *args, deploy="deploys/destroy.py")
            assert refused.returncode != 0, (by, args, refused.output[-3000:])
            assert (
                "CT 150 (someone-else) was not created by this deploy (it lacks the tag "
                "'egograph-deploy'); deploys/destroy.py destroys only containers it created. "
                "Nothing was destroyed"
            ) in refused.output, refused.output[-3000:]
    assert sorted(node.containers()) == ["100", "150"]
    assert node.backend.exists(150)
    types = [t["type"] for t in node.node.admin("state")["tasks"]]
    assert "vzdestroy" not in types and "vzstop" not in types, types

    # --dry names what would go and destroys nothing
    dry = ok(pyinfra(hosts, "--dry", "--json", deploy="deploys/destroy.py"))
    assert dry.changed_ops() == [DESTROY], dry.changed_ops()
    assert sorted(node.containers()) == ["100", "150"]

    # the deploy's own: stopped, destroyed with its disk; the other one is left
    gone = ok(pyinfra(hosts, "-y", "--json", deploy="deploys/destroy.py"))
    assert gone.changed_ops() == [DESTROY]
    assert sorted(node.containers()) == ["150"]
    assert not (node.node.conf_dir / "100.conf").exists()
    assert not node.backend.exists(100)
    assert [t["type"] for t in node.node.admin("state")["tasks"]][-2:] == ["vzstop", "vzdestroy"]

    # the second run: nothing to do
    again = ok(pyinfra(hosts, "-y", "--json", deploy="deploys/destroy.py"))
    assert again.changed_ops() == [] and again.totals()["success"] == 0
    assert sorted(node.containers()) == ["150"]


def wait_task(node: Node, upid: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = node.node.api(f"/nodes/pve/tasks/{upid}/status")
        if status["status"] == "stopped":
            # WARNINGS: n succeeds too (PVE's "Systemd N detected…" without nesting)
            assert status["exitstatus"] == "OK" or status["exitstatus"].startswith("WARNINGS: "), (
                status
            )
            return
        time.sleep(0.2)
    raise AssertionError(f"task {upid} still running")


def test_a_creation_only_change_is_warned_and_reported_as_drift(node: Node) -> None:
    hosts = node.hosts()
    ok(pyinfra(hosts, "-y", "--json", "--limit", "@local"))
    node_ops = ["--limit", "@local"]

    # a bigger disk than the container was created with: PVE takes it only at a create
    bigger = node.hosts(ct_disk_gb=80)
    run = ok(pyinfra(bigger, "-y", "--json", *node_ops))
    assert run.changed_ops() == [], run.changed_ops()  # nothing it could apply
    said = "CT 100: ct_disk_gb is 80 but the root disk is 40G (used only at creation"
    assert said in run.output, run.output[-3000:]
    code, report, _ = run_drift(bigger)
    assert code == 2, report
    (item,) = [c for c in report["hosts"]["@local"] if c.get("not_applied")]
    assert item["operation"] == "Proxmox | CT egograph-prod exists with the runbook's spec"
    assert any(said in r for r in item["reasons"]), item
    assert node.node.api("/nodes/pve/lxc/100/config")["rootfs"].endswith("size=40G")

    # back to the size it has: nothing said about it, no such item
    run = ok(pyinfra(hosts, "-y", "--json", *node_ops))
    assert "ct_disk_gb is" not in run.output
    code, report, _ = run_drift(hosts)
    assert not [c for c in report["hosts"].get("@local", []) if c.get("not_applied")], report
