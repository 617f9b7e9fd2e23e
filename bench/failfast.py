"""Fail fast: how long a release that crashes at import keeps the service down.

One container is converged on the fixture app; a probe inside it asks the backend's
``/health`` at 10 Hz (each answer stamped with the container's clock, its HTTP status and
the ``release`` field); then a release whose backend raises at import is pushed and
``deploys/update.py`` runs. It restarts the unit, sees the process exit (systemd's
``auto-restart``), and rolls back at once. Measured, from the probe's log and the unit's
journal (one clock):

- *restart → previous release healthy*: from systemd's ``Stopping`` line of the restart to
  the first probe that gets 200 from release ``1`` after the failures (target ≤ 10 s);
- *requests failing*: from the first failing probe to the last, plus one probe period
  (target ≤ 5 s); the number of failed probes is noted too. A probe waits at most 1 s for
  its answer (connections are refused while no process listens, so failures are quick).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.sandbox import api as sandbox

from . import containers, measure
from .measure import Run

NAME = "bench-failfast"
HZ = 10
PROBE = """\
import json, sys, time, urllib.request
url, period = sys.argv[1], 1 / float(sys.argv[2])
out = open(sys.argv[3], "a", buffering=1)
tick = time.monotonic()
while True:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            status, release = r.status, json.load(r).get("release")
    except Exception as exc:
        status, release = getattr(exc, "code", 0), None
    out.write(json.dumps({"t": time.time(), "status": status, "release": release}) + "\\n")
    tick += period
    time.sleep(max(0.0, tick - time.monotonic()))
"""
LOG = "/run/bench-probe.jsonl"


def push_release(message: str, changes: dict[str, str]) -> str:
    """A commit on top of the benchmark's app repository (``containers.publish_app``)."""
    bare = sandbox.GIT_ROOT / containers.BENCH_REPO
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "app"
        subprocess.run(["git", "clone", "--quiet", str(bare), str(tree)], check=True)
        for rel, content in changes.items():
            (tree / rel).write_text(content)
        git = ["git", "-C", str(tree), "-c", "user.name=egograph bench"]
        git += ["-c", "user.email=bench@egograph.invalid"]
        subprocess.run([*git, "commit", "--quiet", "-am", message], check=True)
        subprocess.run([*git, "push", "--quiet", "origin", "HEAD:main"], check=True)
        return subprocess.run(
            [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
        ).stdout.strip()


def restart_times(c: sandbox.Container, unit: str, since: float) -> list[float]:
    """When systemd began stopping ``unit`` (a restart's first line), since ``since``."""
    out = c.ssh(
        f"journalctl -u {shlex.quote(unit)} -o json --no-pager --since=@{int(since)}"
    ).stdout
    found = []
    for line in out.splitlines():
        entry = json.loads(line)
        if str(entry.get("MESSAGE", "")).startswith("Stopping "):
            found.append(int(entry["__REALTIME_TIMESTAMP"]) / 1e6)
    return found


def figures(probes: list[dict[str, Any]], restart: float) -> dict[str, float]:
    """The two figures from the probe's log and the first restart's time."""
    failed = [p["t"] for p in probes if p["t"] >= restart and p["status"] != 200]
    if not failed:
        return {"failed_probes": 0, "failing_s": 0.0, "restore_s": 0.0}
    back = next(
        p["t"] for p in probes if p["t"] > failed[-1] and p["status"] == 200 and p["release"] == "1"
    )
    return {
        "failed_probes": len(failed),
        "failing_s": round(failed[-1] - failed[0] + 1 / HZ, 2),
        "restore_s": round(back - restart, 2),
    }


def measure_once(hosts_file: Callable[[sandbox.Container], Path], *, seed: bool) -> list[Run]:
    """Converge a fresh container, push the crashing release, update, and measure."""
    (c,) = containers.fresh([NAME], seed=seed)
    try:
        converge = measure.pyinfra(hosts_file(c), "failfast-converge", 1, "-y")
        if not converge.ok:
            raise RuntimeError(f"failfast: the converge failed:\n{converge.tail}")
        svc = "egograph-backend"
        url = "http://127.0.0.1:8000/health"
        c.ssh(f"cat > /run/bench-probe.py <<'EOF'\n{PROBE}EOF")
        c.ssh(f"systemd-run --unit=bench-probe python3 /run/bench-probe.py {url} {HZ} {LOG}")
        time.sleep(1)
        since = float(c.ssh("date +%s.%N").stdout)
        bad = push_release("crash at import (bench)", sandbox.crash_at_import("backend"))
        update = measure.pyinfra(
            hosts_file(c), "failfast-update", 1, "-y", deploy="deploys/update.py"
        )
        time.sleep(1)
        c.ssh("systemctl stop bench-probe")
        if update.ok or f"ROLLED BACK: release {bad}" not in update.tail:
            raise RuntimeError(f"failfast: expected a rollback of {bad}:\n{update.tail}")
        probes = [json.loads(x) for x in c.ssh(f"cat {LOG}").stdout.splitlines()]
        restarts = restart_times(c, svc, since)
        if not restarts:
            raise RuntimeError(f"failfast: the journal shows no restart of {svc}")
        got = figures(probes, restarts[0])
        note = (
            f"{got['failed_probes']} of {len(probes)} probes failed; "
            f"the update run took {update.seconds:.1f} s"
        )
        return [
            Run("pyinfra", "failfast-restore", 1, got["restore_s"], True, note=note),
            Run("probe", "failfast-failing", 1, got["failing_s"], True, note=note),
        ]
    finally:
        containers.destroy([NAME])
        containers.publish_app()  # the one-commit fixture again, for any later phase
