"""``egodeploy preflight`` as a user runs it (a subprocess, the hosts file in the
environment): a failure on the controller skips everything that would connect; a target
that cannot be reached fails its repository check; the output is one line per check, or a
JSON list."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.unit.preflight.test_checks import PIN, SECRET, owned, proxmox_values

PROJECT = Path(__file__).resolve().parents[3]


def preflight(
    tmp_path: Path, hosts: list[dict[str, Any]], *args: str
) -> subprocess.CompletedProcess[str]:
    hosts_file = tmp_path / "hosts.json"
    hosts_file.write_text(json.dumps({"hosts": hosts}))
    return subprocess.run(
        [sys.executable, "-m", "deploys.cli", "preflight", *args],
        cwd=PROJECT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, "EGOGRAPH_HOSTS_FILE": str(hosts_file),
             "PYTHONPATH": str(PROJECT), "TS_AUTHKEY": ""},
    )  # fmt: skip


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_open_secret_fails_and_nothing_beyond_the_controller_is_tried(tmp_path: Path) -> None:
    values = proxmox_values(tmp_path, pve_port=closed_port())
    secret = Path(values["pve_secret_source"]["file"])
    secret.chmod(0o644)
    data = {
        k: values[k]
        for k in (
            "pve_host",
            "pve_port",
            "pve_secret_source",
            "pve_ca_bundle",
            "pve_ssh_key",
            "ct_ssh_public_keys",
            "services",
            "tailscale_keyring_sha256",
            "tailscale_authkey_source",
        )
    }
    done = preflight(tmp_path, [{"name": "egograph-prod", "data": data}], "--json")
    assert done.returncode == 1, done.stderr
    checks = {c["name"]: c for c in json.loads(done.stdout)}
    failed = checks["secret:pve_secret_source"]
    assert failed["status"] == "fail" and failed["fix"] == f"chmod 600 {secret}"
    assert failed["target"] == "egograph-prod" and failed["setting"] == "pve_secret_source"
    for name in ("pve_api", "node_ssh", "pve_privileges", "template_storage", "repo_url"):
        assert checks[name]["status"] == "skip", checks[name]
        assert "before connecting" in checks[name]["detail"]
    assert checks["settings"]["detail"] == "refused for the failed checks above"
    assert SECRET not in done.stdout + done.stderr


def test_an_unreachable_target_fails_its_repository_check(tmp_path: Path) -> None:
    env = owned(tmp_path / "backend.env", f"API_KEY={SECRET}\n")
    known = owned(tmp_path / "known_hosts", "")
    data = {
        "services": [{"name": "backend", "unit": "egograph-backend", "module": "backend.main:app",
                      "port": 8000, "env_file": "egograph/backend/.env",
                      "env_source": {"file": str(env)}}],
        "tailscale_keyring_sha256": PIN,
        "ssh_hostname": "127.0.0.1", "ssh_port": closed_port(),
        "ssh_known_hosts_file": str(known), "ssh_connect_retries": 0,
    }  # fmt: skip
    done = preflight(tmp_path, [{"name": "plain", "data": data}])
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "plain:"
    assert "  PASS  secret:services[0].env_source: the env file in " in "\n".join(lines)
    assert "  PASS  settings: every setting has its expected form" in lines
    (repo,) = [ln for ln in lines if "repo_url" in ln and ln.startswith("  FAIL")]
    assert "plain: cannot run a command there" in repo
    assert lines[-1] == "  => 1 check(s) failed: repo_url; a deploy stops before changing anything"
    assert done.stderr == ""  # the failure is said once, in the check
