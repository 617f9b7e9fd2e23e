"""deploys/common/shell.py ``with_heartbeat``, run by a real ``sh``: the lines while the
command runs, its status, its output only when it fails, and no wait at its end."""

from __future__ import annotations

import re
import subprocess
import time

from deploys.common.shell import with_heartbeat


def run(command: str, every: int = 1) -> tuple[subprocess.CompletedProcess[str], float]:
    script = with_heartbeat(command, "uv sync", every=every) + 'echo "rc=$rc"\n'
    started = time.monotonic()
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
    return proc, time.monotonic() - started


def test_a_long_command_prints_its_time_and_newest_line_every_few_seconds() -> None:
    proc, took = run(
        "echo 'Resolved 80 packages in 2ms' >&2; sleep 2.5; "
        "echo 'Prepared 80 packages from https://me:token@idx.example/simple in 2.4s' >&2; "
        "sleep 1.2; echo 'Installed 80 packages in 120ms' >&2"
    )
    *beats, end = proc.stdout.splitlines()
    assert end == "rc=0"
    # one a second (the seconds are the clock's, so a beat may read one more)
    seconds = [int(re.match(r"uv sync: (\d+) s, ", b).group(1)) for b in beats]  # type: ignore[union-attr]
    assert len(beats) == 3 and seconds == sorted(seconds) and 1 <= seconds[0] <= 2, beats
    assert beats[0].endswith(", Resolved 80 packages in 2ms")
    assert beats[-1].endswith(", Prepared 80 packages from https://***@idx.example/simple in 2.4s")
    assert "token" not in proc.stdout
    assert proc.stderr == ""  # a command that succeeds: its own output is not shown
    assert took < 3.7 + 0.6  # its end is not held up by the loop's sleep


def test_a_failing_command_keeps_its_status_and_shows_its_output() -> None:
    proc, _ = run("echo 'error: The lockfile needs to be updated' >&2; exit 2", every=4)
    assert proc.stdout == "rc=2\n"  # ended within a beat: no progress line
    assert proc.stderr == "error: The lockfile needs to be updated\n"


def test_a_command_that_prints_nothing_reports_only_its_time() -> None:
    proc, _ = run("sleep 1.5")
    assert re.fullmatch(r"uv sync: [12] s\nrc=0\n", proc.stdout), proc.stdout


def test_control_and_non_ascii_characters_are_dropped_and_the_line_cut() -> None:
    proc, _ = run("printf '\\033[1mBuilt\\033[0m caf\\303\\251 %0300d\\n' 0; sleep 1.5")
    first = proc.stdout.splitlines()[0]
    last = first.partition(" s, ")[2]
    assert last.startswith("[1mBuilt[0m caf 000") and len(last) == 160, first
