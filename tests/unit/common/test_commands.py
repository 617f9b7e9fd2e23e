"""deploys/common/commands.py ``Streamed`` in a real pyinfra run (``@local``): its output is
shown while it runs, in the normal output (no ``-v``), behind the host's prefix; a failure's
output is shown once; ``--json`` keeps its stdout pure JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

DEPLOY = """\
import os
from pyinfra.api import operation
from deploys.common.commands import Streamed
from deploys.common.shell import with_heartbeat

@operation()
def slow(script: str):
    yield Streamed(with_heartbeat(script, "slow step", every=1) + 'exit "$rc"\\n')

slow(name="a slow step", script=os.environ["STEP"])
"""


def pyinfra(tmp_path: Path, step: str, *args: str) -> tuple[int, str, list[tuple[float, str]]]:
    """Run the deploy; (exit code, stdout, stderr lines with the second each arrived)."""
    (tmp_path / "deploy.py").write_text(DEPLOY)
    env = {**os.environ, "STEP": step, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyinfra", "@local", "deploy.py", *args],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None and proc.stdout is not None
    lines = [(time.monotonic() - started, line.rstrip("\n")) for line in proc.stderr]
    out = proc.stdout.read()
    return proc.wait(timeout=60), out, lines


def test_the_progress_lines_are_shown_as_they_come(tmp_path: Path) -> None:
    rc, out, lines = pyinfra(tmp_path, "echo 'Resolved 3 packages' >&2; sleep 3.5", "-y", "--json")
    assert rc == 0, lines
    assert json.loads(out)["results"]["totals"]["success"] == 1  # stdout: JSON alone
    beats = [(at, text) for at, text in lines if "slow step: " in text]
    assert len(beats) >= 2, lines
    assert all(text.startswith("[@local] ") for _, text in beats), beats
    assert beats[0][1].endswith(" s, Resolved 3 packages"), beats
    end = next(at for at, text in lines if "Success" in text)
    assert beats[0][0] < end - 1.5, lines  # printed live, not at the end


def test_a_failure_is_shown_once(tmp_path: Path) -> None:
    rc, _, lines = pyinfra(tmp_path, "echo 'error: lock is stale' >&2; exit 3", "-y")
    assert rc == 1
    assert sum("error: lock is stale" in text for _, text in lines) == 1, lines
