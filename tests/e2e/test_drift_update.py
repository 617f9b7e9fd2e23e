"""Drift check and update flow on a real container (runbook §6-7, issue 'Operating it')."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import site
from tests.sandbox.app import site as app_site
from tests.sandbox.container import Container
from tests.sandbox.runner import PROJECT, pyinfra
from tests.sandbox.runner import drift as run_drift

pytestmark = pytest.mark.e2e

UNIT = "Services | Unit /etc/systemd/system/egograph-backend.service"
RELOAD = "Services | Reload systemd when a unit changed"
SERVICE = "Services | egograph-backend enabled, running the current release, healthy"
ENV = "Env files | Env file for egograph-backend (/opt/egograph/repo/egograph/backend/.env, 0600)"
CHECKOUT = "App repository | Check out main at /opt/egograph/repo"
SYNC = "uv sync | uv sync --all-packages --locked in /opt/egograph/repo"
LOGIN = "Tailscale | Logged in to the tailnet as egograph-prod"
SERVE = "Tailscale serve | Publish backend on HTTPS 443"


def drift(hosts: Path) -> tuple[int, dict[str, Any]]:
    code, report, output = run_drift(hosts)
    assert app_site.CANARY not in output
    return code, report


def drifted_ops(report: dict[str, Any], host: str) -> set[str]:
    return {change["operation"] for change in report["hosts"][host]}


def converge(hosts: Path, deploy: str = "deploys/prod.py") -> None:
    run = pyinfra(hosts, "-y", "--json", deploy=deploy)
    assert run.returncode == 0, run.output[-3000:]


@pytest.fixture
def deployed(new_container: Any, secret_env: Path, tmp_path: Path) -> tuple[Container, Path]:
    c = new_container()
    hosts = site.write_hosts_file(
        tmp_path / "hosts.json", [(c.name, {**c.pyinfra_data(), **site.settings(secret_env)})]
    )
    converge(hosts)
    return c, hosts


def test_drift_names_each_kind_of_drift_and_converging_clears_it(
    deployed: tuple[Container, Path], secret_env: Path
) -> None:
    c, hosts = deployed
    code, report = drift(hosts)
    assert (code, report["status"]) == (0, "in_sync"), report
    assert report["hosts"] == {c.name: []}

    perturbations = [
        ("service stopped", lambda: c.ssh("systemctl stop egograph-backend"), {SERVICE}),
        (
            "unit file edited",
            lambda: c.ssh(
                "sed -i 's/RestartSec=10/RestartSec=3/' "
                "/etc/systemd/system/egograph-backend.service"
            ),
            {UNIT, RELOAD},
        ),
        # The deploy puts the file back as the running service read it: no restart needed.
        (
            "env file changed on the server",
            lambda: c.ssh("echo EXTRA=1 >> /opt/egograph/repo/egograph/backend/.env"),
            {ENV},
        ),
        ("Tailscale logged out", lambda: c.ssh("tailscale logout"), {LOGIN}),
        ("serve config reset", lambda: c.ssh("tailscale serve reset"), {SERVE}),
        (
            "new commit on the remote",
            lambda: app_site.publish_app(
                "drift release", {"egograph/backend/NEWS": f"{uuid.uuid4()}\n"}
            ),
            {CHECKOUT, SYNC, SERVICE},
        ),
    ]
    for label, perturb, expected in perturbations:
        perturb()
        code, report = drift(hosts)
        assert code == 2, (label, report)
        assert expected <= drifted_ops(report, c.name), (label, report)
        for change in report["hosts"][c.name]:
            assert change["reasons"], (label, change)
        converge(hosts)
        code, report = drift(hosts)
        assert code == 0, (label, report)


def test_drift_exits_1_when_the_check_itself_fails(tmp_path: Path, secret_env: Path) -> None:
    hosts = site.write_hosts_file(
        tmp_path / "hosts.json",
        [
            (
                "unreachable",
                {
                    "ssh_hostname": "127.0.0.1",
                    "ssh_port": 1,
                    "ssh_user": "root",
                    **site.settings(secret_env),
                },
            )
        ],
    )
    code, report = drift(hosts)
    assert code == 1 and report["status"] == "failed", report


def test_update_moves_to_a_new_commit_restarting_once_and_refuses_local_edits(
    deployed: tuple[Container, Path],
) -> None:
    c, hosts = deployed
    pid_before = c.ssh("systemctl show -p MainPID --value egograph-backend").stdout.strip()
    new = app_site.publish_app("release 2", {"egograph/backend/__init__.py": 'RELEASE = "2"\n'})

    dry = pyinfra(hosts, "--dry", "--json", deploy="deploys/update.py")
    assert dry.returncode == 0
    assert set(dry.changed_ops()) == {CHECKOUT, SYNC, SERVICE}
    assert c.ssh("git -C /opt/egograph/repo rev-parse HEAD").stdout.strip() != new

    run = pyinfra(hosts, "-y", "--json", deploy="deploys/update.py")
    assert run.returncode == 0, run.output[-3000:]
    assert set(run.changed_ops()) == {CHECKOUT, SYNC, SERVICE}
    assert c.ssh("git -C /opt/egograph/repo rev-parse HEAD").stdout.strip() == new
    pid_after = c.ssh("systemctl show -p MainPID --value egograph-backend").stdout.strip()
    assert pid_after != pid_before
    restarts = c.ssh(
        "journalctl -u egograph-backend --no-pager -o cat | "
        "grep -c 'Started egograph-backend.service'"
    ).stdout.strip()
    assert restarts == "2", "first start + exactly one restart"
    health = json.loads(c.ssh("curl -fsS http://127.0.0.1:8000/health").stdout)
    assert health["release"] == "2"

    c.ssh("echo '# hotfix' >> /opt/egograph/repo/egograph/backend/pyproject.toml")
    app_site.publish_app("release 3", {"egograph/backend/__init__.py": 'RELEASE = "3"\n'})
    refused = pyinfra(hosts, "-y", deploy="deploys/update.py")
    assert refused.returncode != 0
    assert "has local changes to tracked files" in refused.output
    assert "M egograph/backend/pyproject.toml" in refused.output
    assert "repo_discard_local_changes = True" in refused.output
    assert c.ssh("git -C /opt/egograph/repo rev-parse HEAD").stdout.strip() == new
    assert json.loads(c.ssh("curl -fsS http://127.0.0.1:8000/health").stdout)["release"] == "2"

    forced = pyinfra(
        hosts, "-y", "--data", "repo_discard_local_changes=True", deploy="deploys/update.py"
    )
    assert forced.returncode == 0, forced.output[-3000:]
    assert json.loads(c.ssh("curl -fsS http://127.0.0.1:8000/health").stdout)["release"] == "3"


def test_update_deploys_the_commit_it_is_given_as_the_reusable_workflow_does(
    deployed: tuple[Container, Path],
) -> None:
    """``deploy-release.yml`` runs the update flow with ``--data repo_branch=<commit>``: that
    commit is deployed even when the branch has moved on, and a second run changes nothing."""
    c, hosts = deployed
    given = app_site.publish_app("release 2", {"egograph/backend/__init__.py": 'RELEASE = "2"\n'})
    app_site.publish_app("release 3", {"egograph/backend/__init__.py": 'RELEASE = "3"\n'})
    pin = ("-y", "--json", "--data", f"repo_branch={given}")

    run = pyinfra(hosts, *pin, deploy="deploys/update.py")
    assert run.returncode == 0, run.output[-3000:]
    assert c.ssh("git -C /opt/egograph/repo rev-parse HEAD").stdout.strip() == given
    assert json.loads(c.ssh("curl -fsS http://127.0.0.1:8000/health").stdout)["release"] == "2"
    again = pyinfra(hosts, *pin, deploy="deploys/update.py")
    assert again.returncode == 0, again.output[-3000:]
    assert again.changed_ops() == [], again.output[-3000:]


def readme_fact_commands() -> list[list[str]]:
    """Every ``pyinfra inventory.py fact ...`` command the README shows."""
    commands = []
    for line in (PROJECT / "README.md").read_text().splitlines():
        if line.startswith("pyinfra inventory.py fact "):
            words = shlex.split(line.split("#", 1)[0])
            commands.append(words[3:])
    return commands


def test_every_fact_the_readme_shows_works_ad_hoc(deployed: tuple[Container, Path]) -> None:
    c, hosts = deployed
    commands = readme_fact_commands()
    assert len(commands) >= 10
    for args in commands:
        proc = subprocess.run(
            [sys.executable, "-m", "pyinfra", "inventory.py", "fact", *args, "--json"],
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "EGOGRAPH_HOSTS_FILE": str(hosts)},
        )
        assert proc.returncode == 0, (args, proc.stderr[-2000:])
        (value,) = json.loads(proc.stdout).values()
        assert value[c.name], (args, value)  # not null, not empty
        assert app_site.CANARY not in proc.stdout + proc.stderr
    deployment = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pyinfra",
                "inventory.py",
                "fact",
                "deploys.facts.Deployment",
                "--json",
            ],
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
            env={**os.environ, "EGOGRAPH_HOSTS_FILE": str(hosts)},
        ).stdout
    )["deploys.facts.Deployment"][c.name]
    assert deployment["commit"] == app_site.app_head()
    assert (deployment["uv"], deployment["duckdb"], deployment["httpfs"]) == (
        "0.13.9",
        "1.4.3",
        True,
    )
    assert deployment["units"]["egograph-backend"]["active"] == "active"
