"""Run pyinfra the way a user does (the CLI, the project's inventory.py) against sandbox
hosts, and read its own JSON report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]


@dataclass
class PyinfraRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        return json.loads(self.stdout) if self.stdout.strip() else {}

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def changed_ops(self) -> list[str]:
        """Operations that changed something (a real run) or would (a dry run)."""
        rep = self.report
        if rep.get("results"):
            return [op["name"] for op in rep["results"]["operations"] if op["success"]]
        return [op["name"] for op in rep.get("plan", []) if op["hosts_with_change"]]

    def totals(self) -> dict[str, int]:
        return dict(self.report["results"]["totals"])


def pyinfra(
    hosts_file: Path,
    *args: str,
    deploy: str = "deploys/prod.py",
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> PyinfraRun:
    """``pyinfra <args> inventory.py <deploy>`` from the project root."""
    cmd = [sys.executable, "-m", "pyinfra", *args, "inventory.py", deploy]
    proc = subprocess.run(
        cmd,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "EGOGRAPH_HOSTS_FILE": str(hosts_file), **(env or {})},
    )
    return PyinfraRun(proc.returncode, proc.stdout, proc.stderr)


def drift(
    hosts_file: Path, timeout: float = 300, deploy: str = "deploys/prod.py"
) -> tuple[int, dict[str, Any], str]:
    """``egodeploy drift --json --deploy <deploy>``: (exit code, report, all output)."""
    proc = egodeploy(hosts_file, "drift", "--json", "--deploy", deploy, timeout=timeout)
    return proc.returncode, json.loads(proc.stdout), proc.stdout + proc.stderr


def egodeploy(
    hosts_file: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``egodeploy <args>`` from the project root against ``hosts_file``."""
    return subprocess.run(
        [sys.executable, "-m", "deploys.cli", *args],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "EGOGRAPH_HOSTS_FILE": str(hosts_file)},
    )
