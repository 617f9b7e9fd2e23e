"""``egodeploy drift``: the production deploy run as a dry run (``pyinfra --dry --json``),
and its report. It never changes anything, never prompts and needs no TTY. Each operation
that would change is reported with the reasons the operation gave (see
``deploys.common.report``); a commit the deploy refuses because it was rolled back is drift
too. Exit codes: :data:`IN_SYNC`, :data:`DRIFT`, :data:`FAILED` (the check itself)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from .common.envvars import NOT_APPLIED, REASONS_FILE_ENV

IN_SYNC, FAILED, DRIFT = 0, 1, 2


def run_drift_check(
    project_dir: Path, inventory: str, deploy: str, timeout: float
) -> tuple[int, dict[str, Any]]:
    """Run the dry run and build the report; return (exit code, report)."""
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as reasons_file:
        env = {**os.environ, REASONS_FILE_ENV: reasons_file.name, "PYINFRA_PROGRESS": "off"}
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "pyinfra", "--dry", "--json", inventory, deploy],
                cwd=project_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return FAILED, {"status": "failed", "error": f"the check took over {timeout:.0f}s"}
        said = reasons_file.read().splitlines()

    hosts = _ready_hosts(proc.stderr)
    try:
        plan = json.loads(proc.stdout)["plan"] if proc.stdout.strip() else None
    except (ValueError, KeyError):
        plan = None
    refused = _rolled_back(proc.stderr)
    if refused:
        # The deploy refuses a commit that was rolled back: the hosts run an older release
        # than the branch names, and will until a fix arrives; that is drift, not a failure.
        return DRIFT, {"status": "rolled_back", "rolled_back": refused}
    if proc.returncode != 0 or plan is None:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        return FAILED, {"status": "failed", "exit_code": proc.returncode, "error": tail}

    return drift_report(plan, hosts, said)


def drift_report(
    plan: list[dict[str, Any]], hosts: list[str], said: list[str]
) -> tuple[int, dict[str, Any]]:
    """The report from pyinfra's plan (``--dry --json``), the hosts it prepared and the
    lines the operations wrote to the reasons file (``deploys.common.report``)."""
    reasons: dict[tuple[str, str], list[str]] = defaultdict(list)
    not_applied: dict[tuple[str, str], list[str]] = defaultdict(list)
    for line in said:
        item = json.loads(line)
        kind = not_applied if item.get("kind") == NOT_APPLIED else reasons
        kind[(item["host"], item["op_hash"])].append(item["reason"])
    report: dict[str, Any] = {"status": "in_sync", "hosts": {h: [] for h in hosts}}
    for op in plan:
        for host_name in op["hosts_with_change"]:
            report["hosts"].setdefault(host_name, []).append(
                {
                    "operation": op["name"],
                    "reasons": sorted(set(reasons.get((host_name, op["op_hash"]), []))),
                }
            )
        # What the settings say and a deploy cannot apply (e.g. a container's disk size):
        # drift too, marked so, since converging will not clear it.
        for (host_name, op_hash), warned in not_applied.items():
            if op_hash == op["op_hash"] and host_name not in op["hosts_with_change"]:
                report["hosts"].setdefault(host_name, []).append(
                    {"operation": op["name"], "reasons": sorted(set(warned)), "not_applied": True}
                )
    if any(report["hosts"].values()):
        report["status"] = "drift"
    return (DRIFT if report["status"] == "drift" else IN_SYNC), report


def _ready_hosts(stderr: str) -> list[str]:
    """Hosts pyinfra prepared, from its ``[host] Ready: <deploy>`` lines."""
    found = []
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith("[") and "] Ready:" in line:
            found.append(line[1 : line.index("] Ready:")])
    return sorted(set(found))


_ROLLED_BACK = re.compile(r"release [0-9a-f]{40} was rolled back at \S+: not deploying it again")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HOST = re.compile(r"^\[([^\]]+)\]")


def _rolled_back(stderr: str) -> dict[str, str]:
    """Host → the deploy's refusal of a rolled-back commit, from pyinfra's output. A dry
    run reports the refusal as its operation error, without the host: that is the host
    pyinfra named last before it (hosts are prepared one after another)."""
    found: dict[str, str] = {}
    last = "?"
    for raw in stderr.splitlines():
        line = _ANSI.sub("", raw).strip()
        host = _HOST.match(line)
        if host:
            last = host.group(1)
        match = _ROLLED_BACK.search(line)
        if match:
            found[last] = line[match.start() :]
    return found


def render_text(report: dict[str, Any]) -> str:
    if report["status"] == "rolled_back":
        return "\n".join(f"{h}: {m}" for h, m in sorted(report["rolled_back"].items()))
    if report["status"] == "failed":
        return f"drift check FAILED (the check itself, not the hosts):\n{report.get('error', '')}"
    lines = []
    for host_name, changes in sorted(report["hosts"].items()):
        if not changes:
            lines.append(f"{host_name}: in sync")
            continue
        lines.append(f"{host_name}: DRIFT, {len(changes)} operation(s) would change")
        for change in changes:
            kept = (
                " (not applied by a deploy: change it by hand)" if change.get("not_applied") else ""
            )
            lines.append(f"  - {change['operation']}{kept}")
            lines += [f"      {reason}" for reason in change["reasons"]]
    return "\n".join(lines) or "no hosts"
