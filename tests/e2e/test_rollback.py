"""``egodeploy rollback`` on a real container: status before and after a deploy and after a
rollback; a second rollback changes nothing; the update flow and the drift check then refuse
the commit rolled back from; ``rollback --to`` it goes there and back; a ``--to`` that is no
release fails before anything changes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import site
from tests.sandbox.app import site as app_site
from tests.sandbox.container import Container
from tests.sandbox.runner import PyinfraRun, egodeploy, pyinfra
from tests.sandbox.runner import drift as run_drift

pytestmark = pytest.mark.e2e

STATE = "/var/lib/egograph-deploy"
REPO = "/opt/egograph/repo"


def rollback(hosts: Path, *args: str) -> PyinfraRun:
    """``egodeploy rollback -y --json <args>``: pyinfra's own report and output."""
    proc = egodeploy(hosts, "rollback", "-y", "--json", *args, timeout=900)
    return PyinfraRun(proc.returncode, proc.stdout, proc.stderr)


def ok(run: PyinfraRun | subprocess.CompletedProcess[str]) -> Any:
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    return run


def status(hosts: Path, c: Container) -> dict[str, Any]:
    proc = egodeploy(hosts, "status", "--json")
    host: dict[str, Any] = json.loads(proc.stdout)["hosts"][c.name]
    return host


def health(c: Container) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(c.ssh("curl -fsS http://127.0.0.1:8000/health").stdout)
    return out


def head(c: Container) -> str:
    return c.ssh(f"git -C {REPO} rev-parse HEAD").stdout.strip()


def stamp_commit(c: Container) -> str:
    stamp: dict[str, str] = json.loads(c.ssh(f"cat {STATE}/egograph-backend.started.json").stdout)
    return stamp["commit"]


def history(c: Container) -> list[str]:
    text = c.ssh(f"cat {STATE}/releases.json").stdout
    return [e["commit"] for e in json.loads(text)]


def marker(c: Container) -> dict[str, Any] | None:
    out = c.ssh(f"cat {STATE}/release.rolled-back.json 2>/dev/null || true").stdout
    return json.loads(out) if out.strip() else None


def release_refs(c: Container) -> list[str]:
    out = c.ssh(f"git -C {REPO} for-each-ref --format='%(refname)' refs/egograph/releases/")
    return sorted(line.rsplit("/", 1)[-1] for line in out.stdout.split())


@pytest.fixture
def hosts_of(new_container: Any, secret_env: Path, tmp_path: Path) -> tuple[Container, Path]:
    c = new_container()
    data = {**c.pyinfra_data(), **site.settings(secret_env), "service_health_timeout": 120}
    return c, site.write_hosts_file(tmp_path / "hosts.json", [(c.name, data)])


def test_status_before_and_after_a_deploy_and_after_a_rollback_there_and_back(
    hosts_of: tuple[Container, Path],
) -> None:
    c, hosts = hosts_of

    # --- before any deploy: no release, no history; a rollback has nowhere to go
    before = status(hosts, c)
    assert before["release"] is None and before["releases"] == []
    nowhere = rollback(hosts)
    assert nowhere.returncode != 0
    assert "nothing to roll back" in nowhere.output or "no earlier release" in nowhere.output

    # --- release A, then B: the history lists both, each kept by a ref
    a = app_site.app_head()
    ok(pyinfra(hosts, "-y", "--json"))
    assert head(c) == a and history(c) == [a]
    b = app_site.publish_app("release 2", {"egograph/backend/__init__.py": 'RELEASE = "2"\n'})
    ok(pyinfra(hosts, "-y", "--json", deploy="deploys/update.py"))
    assert health(c)["release"] == "2" and stamp_commit(c) == b
    assert history(c) == [a, b] and release_refs(c) == sorted([a, b])
    assert c.ssh(f"stat -c %a {STATE}/releases.json").stdout.strip() == "600"
    on_b = status(hosts, c)
    assert on_b["release"]["commit"] == b and on_b["rolled_back"] is None
    assert [e["commit"] for e in on_b["releases"]] == [a, b]

    # --- a dry rollback says where it goes and changes nothing
    dry = egodeploy(hosts, "rollback", "--dry", timeout=900)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert f"rollback: {b[:12]} -> {a[:12]}" in dry.stdout + dry.stderr
    assert head(c) == b and health(c)["release"] == "2"

    # --- rollback: A runs, healthy, recorded as a release; the marker refuses B
    back = ok(rollback(hosts))
    assert f"rollback: {b[:12]} -> {a[:12]}" in back.stderr
    assert back.totals()["success"] > 0
    assert head(c) == a and stamp_commit(c) == a
    assert health(c)["release"] == "1"
    assert c.ssh(f"git -C {REPO} symbolic-ref -q HEAD", check=False).returncode == 1  # detached
    assert history(c) == [b, a] and release_refs(c) == sorted([a, b])
    mark = marker(c)
    assert mark is not None
    assert (mark["failed_commit"], mark["restored_commit"]) == (b, a)
    assert mark["reason"].startswith("manual rollback by ")
    on_a = status(hosts, c)
    assert on_a["release"]["commit"] == a
    assert on_a["rolled_back"]["failed_commit"] == b
    assert on_a["drift"]["state"] == "rolled_back"
    text = ok(egodeploy(hosts, "status")).stdout
    assert f"ROLLED BACK release {b[:12]}" in text and "manual rollback by" in text
    entry = json.loads(c.ssh(f"tail -n 1 {STATE}/audit.jsonl").stdout)
    assert entry["entry"] == "deploys/rollback.py" and entry["result"] == "success"
    assert (entry["commit_before"], entry["commit_after"]) == (b, a)

    # --- a second rollback: the same release again, pyinfra counts no change
    again = ok(rollback(hosts))
    assert again.totals()["success"] == 0, again.changed_ops()
    assert head(c) == a and marker(c) == mark

    # --- the update flow refuses B; the drift check reports it rolled back
    refused = pyinfra(hosts, "-y", deploy="deploys/update.py")
    assert refused.returncode != 0
    assert f"release {b} was rolled back" in refused.output
    assert head(c) == a and health(c)["release"] == "1"
    code, report, _ = run_drift(hosts)
    assert code == 2 and report["status"] == "rolled_back", report

    # --- rollback --to B: there and back; healthy, the marker gone, the branch in sync
    forward = ok(rollback(hosts, "--to", b[:10]))
    assert f"rollback: {a[:12]} -> {b[:12]}" in forward.stderr
    assert head(c) == b and stamp_commit(c) == b and health(c)["release"] == "2"
    assert marker(c) is None
    assert history(c) == [a, b]
    on_b = status(hosts, c)
    assert on_b["rolled_back"] is None and on_b["drift"]["state"] == "in_sync"
    # the update flow takes it from here: the branch's head runs, nothing to change
    update = ok(pyinfra(hosts, "-y", "--json", deploy="deploys/update.py"))
    assert head(c) == b, update.changed_ops()


def test_a_to_that_is_not_a_release_fails_before_anything_changes(
    hosts_of: tuple[Container, Path],
) -> None:
    c, hosts = hosts_of
    a = app_site.app_head()
    ok(pyinfra(hosts, "-y", "--json"))
    pid = c.ssh("systemctl show -p MainPID --value egograph-backend").stdout.strip()
    audit = c.ssh(f"wc -l < {STATE}/audit.jsonl").stdout.strip()

    # not a commit at all: refused by the command itself
    bad = egodeploy(hosts, "rollback", "-y", "--to", "main")
    assert bad.returncode == 2 and "--to" in bad.stderr and "hex" in bad.stderr

    # a commit the history does not hold (the one-release history has nothing earlier)
    for args in (("--to", "0" * 40), ()):
        run = rollback(hosts, *args)
        assert run.returncode != 0
        assert "nothing was changed" in run.output, run.output[-2000:]
        assert head(c) == a and history(c) == [a] and marker(c) is None
        assert c.ssh("systemctl show -p MainPID --value egograph-backend").stdout.strip() == pid
    # the refusals are recorded as failed runs, not as releases
    entries = c.ssh(f"tail -n +{int(audit) + 1} {STATE}/audit.jsonl").stdout.splitlines()
    assert [json.loads(e)["result"] for e in entries] == ["failed", "failed"]
