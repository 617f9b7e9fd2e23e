"""The e2e tier cannot vanish: where it cannot run (here: not root), it is skipped with the
reason on a developer's machine, and fails where it is required (CI=true, as CI sets it, or
EGOGRAPH_REQUIRE_E2E=1). The real pytest runs a real e2e test file as an unprivileged user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[3]


def run_as_unprivileged(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("CI", "EGOGRAPH_REQUIRE_E2E")
    } | extra_env
    cmd = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "tests/e2e/test_core.py", "-k", "second_converge or dry",
    ]  # fmt: skip
    if os.geteuid() == 0:  # drop to nobody: the sandbox needs root
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        env["HOME"] = "/tmp"
    return subprocess.run(
        cmd, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_without_root_the_e2e_tests_skip_with_the_reason() -> None:
    proc = run_as_unprivileged({})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the sandbox needs root" in proc.stdout
    assert "e2e: 0 ran (0 passed, 0 failed), " in proc.stdout
    assert "skipped" in proc.stdout.splitlines()[-1]


@pytest.mark.parametrize("env", [{"CI": "true"}, {"EGOGRAPH_REQUIRE_E2E": "1"}])
def test_where_required_an_e2e_test_that_cannot_run_fails(env: dict[str, str]) -> None:
    proc = run_as_unprivileged(env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "the e2e tests must run here (CI or EGOGRAPH_REQUIRE_E2E=1)" in proc.stdout
    assert "the sandbox needs root" in proc.stdout
