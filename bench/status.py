"""``egodeploy status`` on one converged container: how long it takes and how many remote
commands it sends (its ``--show-commands`` prints each as pyinfra's ``>>>`` line, as the
deploy's ``-vv`` does), each run timed from the process start to its exit."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from tests.sandbox import api as sandbox

from . import containers, measure
from .measure import Run

NAME = "bench-status"


def status(hosts_file: Path) -> Run:
    """``egodeploy status --json --show-commands``: exit 0 means every service healthy."""
    exe = Path(sys.executable).parent / "egodeploy"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "deploys.cli"]
    out = measure.stream(
        [*cmd, "status", "--json", "--show-commands"], env={"EGOGRAPH_HOSTS_FILE": str(hosts_file)}
    )
    # stdout and stderr come together: the report is the lines from a lone "{" on (the
    # ">>>" line before it holds braces of its own)
    lines = [line for _, line in out.lines]
    try:
        report = json.loads("\n".join(lines[lines.index("{") :]))
        host = next(iter(report["hosts"].values()))
        note = f"release {str((host.get('release') or {}).get('commit'))[:12]}"
    except (ValueError, StopIteration, KeyError, AttributeError):
        note = "no JSON report"
    return Run(
        tool="egodeploy status",
        scenario="status",
        hosts=1,
        seconds=out.seconds,
        ok=out.returncode == 0,
        commands=measure.remote_commands(out),
        cpu_s=out.cpu_s,
        controller_cpu_s=out.controller_cpu_s,
        note=note,
        tail="" if out.returncode == 0 else out.text[-3000:],
    )


def measure_runs(
    hosts_file: Callable[[sandbox.Container], Path], runs: int, *, seed: bool
) -> list[Run]:
    """Converge a fresh container, then time ``runs`` status reads of it."""
    (c,) = containers.fresh([NAME], seed=seed)
    try:
        hosts = hosts_file(c)
        converge = measure.pyinfra(hosts, "status-converge", 1, "-y")
        if not converge.ok:
            raise RuntimeError(f"status: the converge failed:\n{converge.tail}")
        return [status(hosts) for _ in range(runs)]
    finally:
        containers.destroy([NAME])
