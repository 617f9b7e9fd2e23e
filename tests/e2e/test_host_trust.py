"""Trust from nothing: a new container's SSH host key, read through the node and pinned.

From an empty emulated Proxmox node and an empty managed known_hosts (``ct_ssh_known_hosts``)
the deploy creates the container, reads its ed25519 host key through the node's SSH
(``pct exec <vmid> -- cat …``, the emulated node's ``pct``), pins it, and converges with
strict host key checking. The sandbox seeds nothing for such a container: no known_hosts
line, no sandbox key in it; root's authorized_keys is the create's ``ssh-public-keys``.
Real sshd in a real systemd container, real ``ssh`` clients for the key checks.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import container as sandbox_container
from tests.sandbox import paths, site
from tests.sandbox.pve import site as pve_site
from tests.sandbox.pve.sandbox_backend import SandboxBackend
from tests.sandbox.runner import PyinfraRun, pyinfra

pytestmark = pytest.mark.e2e

HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
TAG = "egograph-ct=127.0.0.1/egograph-prod"


def ok(run: PyinfraRun) -> PyinfraRun:
    assert run.returncode == 0, run.output[-4000:]
    return run


class Node:
    def __init__(self, tmp: Path, env: Path) -> None:
        self.prefix = f"t{os.getpid() % 1000}x"
        self.node = pve_site.start_node(tmp / f"pve-{self.prefix}", prefix=self.prefix)
        self.backend = SandboxBackend(self.prefix)
        self.tmp, self.env = tmp, env
        # the deploy's key for the container (listed), and one that is not listed
        self.listed = _keygen(tmp / "listed")
        self.other = _keygen(tmp / "other")

    @property
    def known_hosts(self) -> Path:
        return self.node.containers_known_hosts

    def hosts(self, **overrides: Any) -> Path:
        data: dict[str, Any] = {
            **site.settings(self.env),
            **pve_site.settings(self.node, ct_tun_method="none"),
            "tailscale_enabled": False,
            "ct_ssh_public_keys": [f"{self.listed}.pub"],
            "ssh_key": str(self.listed),
            **overrides,
        }
        name = "-".join(f"{k}" for k in sorted(overrides)) or "hosts"
        return site.write_hosts_file(self.tmp / f"{name}.json", [("egograph-prod", data)])

    def container(self) -> sandbox_container.Container:
        return sandbox_container.get(self.backend.name(100))

    def pct(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """``pct`` on the node, over the node's SSH (as the deploy runs it)."""
        return subprocess.run(
            ["ssh", "-i", str(paths.SSH_KEY), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={self.node.ssh_dir / 'known_hosts'}",
             "-o", "StrictHostKeyChecking=yes", "-p", str(self.node.ssh_port),
             f"root@{paths.HOST_IP}", shlex.join(["pct", *argv])],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def tasks(self) -> list[str]:
        return [t["type"] for t in self.node.admin("state")["tasks"]]

    def as_root(self, path: str, method: str, **params: Any) -> None:
        """A root@pam API call behind the deploy's back, waited for."""
        upid = self.node.api(path, method, **params)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = self.node.api(f"/nodes/pve/tasks/{upid}/status")
            if status["status"] == "stopped":
                assert status["exitstatus"] == "OK", status
                return
            time.sleep(0.2)
        raise AssertionError(f"task {upid} still running")


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def ssh_as(key: Path, known_hosts: Path, ip: str) -> subprocess.CompletedProcess[str]:
    """A real ssh client: ``key`` only, the host key checked strictly against ``known_hosts``."""
    return subprocess.run(
        ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
         "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
         "-o", "ConnectTimeout=10", f"root@{ip}", "id -un"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def host_pub(c: sandbox_container.Container) -> list[str]:
    return c.exec(["cat", f"{HOST_KEY}.pub"]).stdout.split()[:2]


@pytest.fixture
def node(sandbox: None, secret_env: Path, tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path, secret_env)
    yield n
    n.backend.tear_down(n.node)


def test_host_key_read_through_the_node_pinned_and_enforced(node: Node) -> None:
    hosts = node.hosts()
    assert not node.known_hosts.exists()

    # --dry from nothing: nothing created, the managed file not written
    ok(pyinfra(hosts, "--dry", "--json"))
    assert not node.known_hosts.exists() and node.tasks() == []

    # one run: created, its host key read through the node and pinned, then strict SSH
    first = ok(pyinfra(hosts, "-y", "--json"))
    assert first.totals()["error"] == 0
    c = node.container()
    kind, blob = host_pub(c)
    assert node.known_hosts.read_text() == f"{c.ip} {kind} {blob} {TAG}\n"
    assert node.known_hosts.stat().st_mode & 0o777 == 0o600
    assert "read through the node, pinned in" in first.output
    # the sandbox seeded nothing: no known_hosts line, only the create's key in the container
    assert c.ip not in paths.KNOWN_HOSTS.read_text()
    authorized = c.exec(["cat", "/root/.ssh/authorized_keys"]).stdout
    assert authorized == Path(f"{node.listed}.pub").read_text()

    # (a) the key listed in ct_ssh_public_keys logs in, against the pinned host key
    login = ssh_as(node.listed, node.known_hosts, c.ip)
    assert login.returncode == 0 and login.stdout.strip() == "root", login.stderr
    # (b) a key that is not listed is refused by the container's sshd (the sandbox's too)
    for key in (node.other, paths.SSH_KEY):
        refused = ssh_as(key, node.known_hosts, c.ip)
        assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused

    # again: nothing changes, the pinned line stays as it was; a dry run reads it too
    pinned = node.known_hosts.read_bytes()
    second = ok(pyinfra(hosts, "-y", "--json"))
    assert second.totals()["success"] == 0, second.changed_ops()
    assert ok(pyinfra(hosts, "--dry", "--json")).changed_ops() == []
    assert node.known_hosts.read_bytes() == pinned

    # the node's pct: upstream's refusals, and exec's exit status passed through
    assert node.pct("exec", "100", "--", "sh", "-c", "exit 7").returncode == 7
    unknown = node.pct("exec", "4242", "--", "true")
    assert unknown.returncode == 255
    assert unknown.stderr.strip() == "Configuration file 'nodes/pve/lxc/4242.conf' does not exist"
    node.as_root("/nodes/pve/lxc/100/status/stop", "POST")
    stopped = node.pct("exec", "100", "--", "true")
    assert (stopped.returncode, stopped.stderr.strip()) == (255, "CT 100 not running")
    # started again by the deploy: same container, same pinned key, no new line
    ok(pyinfra(hosts, "-y", "--json"))
    assert node.known_hosts.read_bytes() == pinned

    # (c) the container's host key replaced: the run stops with the clear error, changes nothing
    c.exec(["sh", "-c", f"rm -f {HOST_KEY} {HOST_KEY}.pub && ssh-keygen -q -t ed25519 -N '' "
            f"-f {HOST_KEY} && systemctl restart ssh"])  # fmt: skip
    new_kind, new_blob = host_pub(c)
    assert new_blob != blob
    tasks = node.tasks()
    marker = c.exec(["stat", "-c", "%Y", "/etc/egograph"], check=False).stdout
    for args in (("--dry",), ("-y",)):
        changed = pyinfra(hosts, *args)
        (node.tmp / f"changed{args[0]}.log").write_text(changed.output)  # kept for a look
        assert changed.returncode != 0, changed.output[-3000:]
        out = " ".join(changed.output.split())
        assert (
            f"CT egograph-prod (vmid 100) at {c.ip} presents an SSH host key other than the one "
            f"pinned for it in {node.known_hosts} (ct_ssh_known_hosts)"
        ) in out, changed.output[-3000:]
        assert f"ssh-keygen -f {node.known_hosts} -R '{c.ip}'" in out
        assert "pct exec 100 -- ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub" in out
        assert "Traceback" not in changed.output
    assert node.known_hosts.read_bytes() == pinned
    assert node.tasks() == tasks
    assert c.exec(["stat", "-c", "%Y", "/etc/egograph"], check=False).stdout == marker

    # the fix the error names: drop the line; the next run pins the new key, read on the node
    subprocess.run(["ssh-keygen", "-f", str(node.known_hosts), "-R", c.ip], check=True,
                   capture_output=True)  # fmt: skip
    ok(pyinfra(hosts, "-y", "--json"))
    assert node.known_hosts.read_text() == f"{c.ip} {new_kind} {new_blob} {TAG}\n"

    # deploys/destroy.py: the container and its line go
    ok(pyinfra(hosts, "-y", "--json", deploy="deploys/destroy.py"))
    assert node.known_hosts.read_text() == ""


def test_a_container_recreated_by_the_deploy_gets_its_new_key_pinned(node: Node) -> None:
    """A node whose own host key is not known pins nothing (the run stops, naming it).
    Then: destroyed behind the deploy's back (its line stays), created again by the deploy:
    the create drops the old line, the new container's key is read on the node and pinned."""
    # the node's own host key unknown: the container's key is not trusted either
    empty = node.tmp / "empty_known_hosts"
    empty.write_text("")
    untrusted = pyinfra(node.hosts(pve_ssh_known_hosts=str(empty)), "-y")
    assert untrusted.returncode != 0
    out = " ".join(untrusted.output.split())
    assert (
        f"CT egograph-prod (vmid 100): the node's SSH (root@{paths.HOST_IP}:{node.node.ssh_port}):"
    ) in out, untrusted.output[-3000:]
    assert f"its host key must be in pve_ssh_known_hosts, {empty}" in out
    assert "Traceback" not in untrusted.output
    assert not node.known_hosts.exists()

    hosts = node.hosts()
    ok(pyinfra(hosts, "-y", "--json"))
    c = node.container()
    old = host_pub(c)
    node.as_root("/nodes/pve/lxc/100/status/stop", "POST")
    node.as_root("/nodes/pve/lxc/100", "DELETE", purge=1)
    assert old[1] in node.known_hosts.read_text()
    again = ok(pyinfra(hosts, "-y", "--json"))
    assert "Proxmox | CT egograph-prod exists with the runbook's spec" in again.changed_ops()
    c = node.container()
    new = host_pub(c)
    assert new != old
    assert node.known_hosts.read_text() == f"{c.ip} {new[0]} {new[1]} {TAG}\n"
    assert ssh_as(node.listed, node.known_hosts, c.ip).returncode == 0
