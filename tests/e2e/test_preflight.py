"""``egodeploy preflight`` against an emulated Proxmox node (its API with its own CA, its
sshd with ``pct``) and the sandbox's git server, as a user runs it, and the deploy on the
same faults:

- a good setup: every check passes, by name; nothing changes (no task, no container, only
  GET requests, no known_hosts line);
- a token missing one privilege: preflight names it with its path; the deploy stops
  before anything is created;
- a secret file open to others (0644): preflight names the setting and ``chmod 600``; the
  deploy refuses before it sends a single API request;
- a CA file that is not there: preflight names ``pve_ca_bundle`` and the copy to make; the
  deploy refuses before connecting.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import site
from tests.sandbox.app import site as app_site
from tests.sandbox.pve import site as pve_site
from tests.sandbox.runner import egodeploy, pyinfra

pytestmark = pytest.mark.e2e

CHECKS = [
    "secret:pve_secret_source",
    "secret:tailscale_authkey_source",
    "secret:services[0].env_source",
    "ssh_key:ssh_key",
    "ssh_key:pve_ssh_key",
    "ssh_key:ct_ssh_public_keys",
    "tls:pve_ca_bundle",
    "tailscale_keyring_pin",
    "settings",
    "pve_api",
    "node_ssh",
    "pve_privileges",
    "template_storage",
    "repo_url",
]
"""Every check of a Proxmox target, in the order preflight makes them."""
REMOTE = ["pve_api", "node_ssh", "pve_privileges", "template_storage", "repo_url"]


class Node:
    def __init__(self, node: pve_site.Node, env: Path, tmp: Path) -> None:
        self.node = node
        self.env = env
        self.tmp = tmp

    def hosts(self, **overrides: Any) -> Path:
        data = {**site.settings(self.env),
                **pve_site.settings(self.node, ct_tun_method="raw", **overrides)}  # fmt: skip
        return site.write_hosts_file(self.tmp / "hosts.json", [("egograph-prod", data)])

    def state(self) -> dict[str, Any]:
        return dict(self.node.admin("state"))

    def untouched(self) -> None:
        """No container, no task, no conf file: nothing was ever changed on the node."""
        state = self.state()
        assert state["containers"] == {} and state["tasks"] == [], state
        assert list(self.node.conf_dir.glob("*.conf")) == []


def start(tmp: Path, prefix: str, omit: tuple[str, ...] = ()) -> Node:
    app_site.publish_app()
    node = pve_site.start_node(tmp / "pve", prefix=f"{prefix}{time.time_ns() % 100000}x", omit=omit)
    return Node(node, app_site.write_secret_env(f"backend-preflight-{os.getpid()}"), tmp)


@pytest.fixture(scope="module")
def pve(sandbox: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    n = start(tmp_path_factory.mktemp("preflight"), "pre")
    try:
        yield n
    finally:
        n.node.stop()


def preflight(hosts: Path) -> tuple[int, dict[str, dict[str, Any]], str]:
    """(exit code, the checks by name, the text output) of one target."""
    as_json = egodeploy(hosts, "preflight", "--json", timeout=180)
    listed = json.loads(as_json.stdout)
    assert [c["target"] for c in listed] == ["egograph-prod"] * len(listed), listed
    text = egodeploy(hosts, "preflight", timeout=180)
    assert text.returncode == as_json.returncode, text.stdout + text.stderr
    return as_json.returncode, {c["name"]: c for c in listed}, text.stdout


def test_a_good_setup_passes_every_check_and_changes_nothing(pve: Node) -> None:
    hosts = pve.hosts()
    before = len(pve.state()["api_requests"])
    code, checks, text = preflight(hosts)
    assert list(checks) == CHECKS, list(checks)
    failed = {n: c for n, c in checks.items() if c["status"] != "pass"}
    assert code == 0 and failed == {}, failed
    assert f"TLS verified against {pve.node.ca_path}" in checks["pve_api"]["detail"]
    assert "holds every privilege this run needs" in checks["pve_privileges"]["detail"]
    assert "(host key checked): pct, " in checks["node_ssh"]["detail"]
    assert "downloads it there" in checks["template_storage"]["detail"]  # an empty node
    assert "the container does not exist yet" in checks["repo_url"]["detail"]
    assert text.splitlines()[-1] == "  => ready to deploy"
    assert all(f"  PASS  {name}: " in text for name in CHECKS), text
    # nothing changed: the API was only read, the node holds nothing, no key was pinned
    asked = pve.state()["api_requests"][before:]
    assert asked and {m for m, _, _ in asked} == {"GET"}, asked
    assert ["GET", "/api2/json/access/permissions", 200] in asked
    pve.untouched()
    assert not pve.node.containers_known_hosts.exists()
    secret = (pve.node.state_dir / "token.secret").read_text().strip()
    assert secret not in text + json.dumps(checks) and app_site.CANARY not in text


def test_a_secret_file_open_to_others_fails_and_the_deploy_refuses_before_connecting(
    pve: Node,
) -> None:
    exposed = pve.tmp / "token-0644.secret"
    exposed.write_text((pve.node.state_dir / "token.secret").read_text())
    exposed.chmod(0o644)
    hosts = pve.hosts(pve_secret_source={"file": str(exposed)})
    before = len(pve.state()["api_requests"])
    code, checks, text = preflight(hosts)
    assert code == 1
    failed = checks["secret:pve_secret_source"]
    assert failed["status"] == "fail" and failed["setting"] == "pve_secret_source"
    assert "(mode 0644)" in failed["detail"] and failed["fix"] == f"chmod 600 {exposed}"
    assert f"        fix: chmod 600 {exposed}" in text
    assert {n for n, c in checks.items() if c["status"] == "skip"} == set(REMOTE)

    run = pyinfra(hosts, "-y", timeout=300)
    assert run.returncode != 0
    assert "bad settings, nothing was touched" in run.output, run.output[-3000:]
    assert f"pve_secret_source: file '{exposed}' is open to group or others (mode 0644)" in (
        run.output
    )
    # neither preflight nor the deploy sent one API request
    assert pve.state()["api_requests"][before:] == []
    pve.untouched()


def test_a_missing_ca_file_fails_naming_the_setting_and_the_deploy_refuses_before_connecting(
    pve: Node,
) -> None:
    gone = pve.tmp / "pve-root-ca.pem"
    hosts = pve.hosts(pve_ca_bundle=str(gone))
    before = len(pve.state()["api_requests"])
    code, checks, text = preflight(hosts)
    assert code == 1
    tls = checks["tls:pve_ca_bundle"]
    assert tls["status"] == "fail" and tls["setting"] == "pve_ca_bundle"
    assert f"file '{gone}' does not exist on the controller" in tls["detail"]
    assert f"scp root@<node>:/etc/pve/pve-root-ca.pem {gone}" in tls["fix"]
    assert f"  FAIL  tls:pve_ca_bundle: file '{gone}' does not exist" in text
    assert {n for n, c in checks.items() if c["status"] == "skip"} == set(REMOTE)

    run = pyinfra(hosts, "-y", timeout=300)
    assert run.returncode != 0
    assert f"pve_ca_bundle: file '{gone}' does not exist on the controller" in run.output, (
        run.output[-3000:]
    )
    assert pve.state()["api_requests"][before:] == []
    pve.untouched()


def test_a_token_missing_one_privilege_is_named_and_the_deploy_creates_nothing(
    sandbox: None, tmp_path: Path
) -> None:
    n = start(tmp_path, "prp", omit=("SDN.Use",))
    try:
        hosts = n.hosts()
        code, checks, text = preflight(hosts)
        assert code == 1
        failed = {name: c for name, c in checks.items() if c["status"] == "fail"}
        assert list(failed) == ["pve_privileges"], failed
        assert (
            "the API token deploy@pve!egograph (pve_token_id) is missing on "
            "/sdn/zones/localnetwork/vmbr0: SDN.Use (needed for: net0 on vmbr0)"
        ) in failed["pve_privileges"]["detail"]
        assert "README's roles" in failed["pve_privileges"]["fix"]
        assert "  FAIL  pve_privileges: " in text
        n.untouched()

        run = pyinfra(hosts, "-y", timeout=300)
        assert run.returncode != 0
        assert "is missing on /sdn/zones/localnetwork/vmbr0: SDN.Use" in run.output, run.output[
            -3000:
        ]
        # checked through the emulator: nothing was created, downloaded or started
        n.untouched()
        assert not [r for r in n.state()["api_requests"] if r[0] != "GET"]
    finally:
        n.node.stop()
