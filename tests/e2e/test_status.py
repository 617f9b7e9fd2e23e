"""``egodeploy status`` and the audit log on a real container: before any deploy, after a
deploy (and its no-op rerun, which writes no entry), and after a release that was rolled
back. One remote command per host; no secret in the log or in the output."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import site
from tests.sandbox.app import site as app_site
from tests.sandbox.container import Container
from tests.sandbox.runner import PyinfraRun, egodeploy, pyinfra
from tests.sandbox.tailscale import site as tailscale_site

pytestmark = pytest.mark.e2e

AUDIT = "/var/lib/egograph-deploy/audit.jsonl"
HOST_KEYS = {
    "reachable", "error", "container", "release", "services", "last_deploy", "audit",
    "rolled_back", "releases", "run_lock", "drift",
}  # fmt: skip
SERVICE_KEYS = {"name", "unit", "state", "active", "healthy", "active_since", "url"}
ENTRY_KEYS = [
    "time", "started", "controller", "entry", "commit_before", "commit_after", "changed",
    "failed", "result", "duration_s",
]  # fmt: skip


def status(hosts: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    """``egodeploy status --json --show-commands``: (exit code, report, stderr)."""
    proc = egodeploy(hosts, "status", "--json", "--show-commands", *args)
    report = json.loads(proc.stdout)
    assert set(report) == {"exit_code", "hosts"} and report["exit_code"] == proc.returncode
    return proc.returncode, report, proc.stderr


def one_host(report: dict[str, Any], c: Container) -> dict[str, Any]:
    assert list(report["hosts"]) == [c.name]
    host: dict[str, Any] = report["hosts"][c.name]
    assert set(host) == HOST_KEYS, host
    for svc in host["services"]:
        assert set(svc) == SERVICE_KEYS
    for entry in host["audit"]:
        assert list(entry) == ENTRY_KEYS
    return host


def remote_commands(stderr: str) -> int:
    return sum(1 for line in stderr.splitlines() if ">>> " in line)


def audit_entries(c: Container) -> list[dict[str, Any]]:
    out = c.ssh(f"cat {AUDIT} 2>/dev/null || true").stdout
    return [json.loads(line) for line in out.splitlines()]


def ok(run: PyinfraRun) -> PyinfraRun:
    assert run.returncode == 0, run.output[-3000:]
    return run


def head(c: Container) -> str:
    return c.ssh("git -C /opt/egograph/repo rev-parse HEAD").stdout.strip()


def secrets() -> list[str]:
    return [app_site.CANARY, tailscale_site.authkey()]


def test_status_before_a_deploy_after_it_and_after_a_rollback_with_the_audit_log(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container()
    data = {**c.pyinfra_data(), **site.settings(secret_env), "service_health_timeout": 120}
    hosts = site.write_hosts_file(tmp_path / "hosts.json", [(c.name, data)])
    shown: list[str] = []

    # --- before any deploy: reachable, the service absent, nothing recorded; exit 2
    code, report, err = status(hosts)
    shown += [json.dumps(report), err]
    host = one_host(report, c)
    assert code == 2, report
    assert remote_commands(err) == 1, err
    assert host["reachable"] and host["container"] is None  # no Proxmox here
    assert host["services"][0]["state"] == "absent" and not host["services"][0]["healthy"]
    assert host["release"] is None and host["last_deploy"] is None and host["audit"] == []
    assert host["drift"]["state"] == "drift" and "not deployed" in host["drift"]["summary"]
    assert c.ssh(f"test -e {AUDIT}", check=False).returncode == 1  # status wrote nothing

    # --- a deploy: one entry naming what changed
    started = time.time()
    first = ok(pyinfra(hosts, "-y", "--json"))
    good = head(c)
    entries = audit_entries(c)
    assert len(entries) == 1, entries
    entry = entries[0]
    assert list(entry) == ENTRY_KEYS
    assert entry["entry"] == "deploys/prod.py" and entry["result"] == "success"
    assert entry["commit_before"] is None and entry["commit_after"] == good
    assert entry["failed"] is None
    assert set(entry["changed"]) == set(first.changed_ops()), first.changed_ops()
    assert any(op.startswith("Services | ") for op in entry["changed"])
    assert entry["controller"].endswith(
        "@" + subprocess.check_output(["hostname"], text=True).strip()
    )
    assert 0 < entry["duration_s"] <= time.time() - started + 1
    assert c.ssh(f"stat -c '%a %U' {AUDIT}").stdout.split() == ["600", "root"]

    # a second run changes nothing: pyinfra's count is 0 and no entry is added
    again = ok(pyinfra(hosts, "-y", "--json"))
    assert again.totals()["success"] == 0, again.changed_ops()
    assert len(audit_entries(c)) == 1

    code, report, err = status(hosts)
    shown += [json.dumps(report), err]
    host = one_host(report, c)
    assert code == 0, report
    assert remote_commands(err) == 1, err
    assert host["release"]["commit"] == good
    assert host["release"]["deployed_by"] == entry["controller"]
    assert host["release"]["since"] and host["release"]["since"] <= entry["time"]
    (svc,) = host["services"]
    assert (svc["name"], svc["state"], svc["active"], svc["healthy"]) == (
        "backend", "active", True, True
    )  # fmt: skip
    dns = json.loads(c.ssh("tailscale status --json --peers=false").stdout)["Self"]["DNSName"]
    assert svc["url"] == f"https://{dns.rstrip('.')}/"
    assert host["last_deploy"] == entry and host["audit"] == [entry]
    assert host["rolled_back"] is None and host["run_lock"] is None
    assert host["drift"]["state"] == "in_sync" and host["drift"]["branch_commit"] == good

    text = egodeploy(hosts, "status")
    shown += [text.stdout, text.stderr]
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"{c.name}: OK")
    assert f"release    {good[:12]}" in text.stdout and svc["url"] in text.stdout
    assert "deploys/prod.py" in text.stdout and "egodeploy drift" in text.stdout

    # --- a release that crashes: rolled back; the entry says so, status shows the marker
    bad = app_site.publish_app("broken", app_site.crash_at_import("backend"))
    failed = pyinfra(hosts, "-y", deploy="deploys/update.py")
    assert failed.returncode != 0
    assert f"ROLLED BACK: release {bad} failed (egograph-backend)" in failed.output
    entries = audit_entries(c)
    assert len(entries) == 2, entries
    rolled = entries[-1]
    assert rolled["entry"] == "deploys/update.py" and rolled["result"] == "rolled_back"
    assert rolled["commit_before"] == good and rolled["commit_after"] == good
    assert rolled["failed"] and rolled["failed"].startswith("Services | ")
    assert any(op.startswith("App repository | ") for op in rolled["changed"]), rolled

    code, report, err = status(hosts)
    shown += [json.dumps(report), err]
    host = one_host(report, c)
    assert code == 0, report  # the last good release runs, healthy
    assert remote_commands(err) == 1, err
    marker = host["rolled_back"]
    assert marker["failed_commit"] == bad and marker["restored_commit"] == good
    assert host["release"]["commit"] == good
    assert host["last_deploy"] == rolled and host["audit"] == entries
    assert host["drift"]["state"] == "rolled_back"
    assert "not deploying it again" in host["drift"]["summary"]
    text = egodeploy(hosts, "status", "-n", "2")
    shown += [text.stdout, text.stderr]
    assert f"ROLLED BACK release {bad[:12]}" in text.stdout
    assert "rolled_back" in text.stdout

    # --- no secret anywhere: not in the audit log, not in status output
    shown.append(c.ssh(f"cat {AUDIT}").stdout)
    for secret in secrets():
        for text_seen in shown:
            assert secret not in text_seen and secret[-12:] not in text_seen
    # control: the canary did reach the target
    assert app_site.CANARY in c.ssh("cat /opt/egograph/repo/egograph/backend/.env").stdout


def test_status_of_a_host_it_cannot_reach_exits_1(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container()
    data = {**c.pyinfra_data(), **site.settings(secret_env), "ssh_port": 1}  # nothing listens
    hosts = site.write_hosts_file(tmp_path / "hosts.json", [(c.name, data)])
    code, report, err = status(hosts)
    assert code == 1, report
    host = report["hosts"][c.name]
    assert host["reachable"] is False and host["error"], host
    assert remote_commands(err) == 0
