"""``egodeploy logs`` on a deployed container: the journal over the deploy's own SSH."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any

import pytest

from tests.sandbox import site
from tests.sandbox.container import Container
from tests.sandbox.runner import PROJECT, egodeploy, pyinfra

pytestmark = pytest.mark.e2e


def request(c: Container, marker: str) -> None:
    """A request the app logs (uvicorn's access line names the path and query)."""
    c.ssh(f"curl -fsS 'http://127.0.0.1:8000/health?probe={marker}' >/dev/null")


def line_reader(stream: IO[str]) -> queue.Queue[str]:
    """The stream's lines as they come, read by a thread (a read never blocks the test)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    return lines


def read_until(lines: queue.Queue[str], needle: str, seconds: float) -> None:
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            seen.append(lines.get(timeout=left))
        except queue.Empty:
            break
        if needle in seen[-1]:
            return
    raise AssertionError(f"{needle!r} not seen within {seconds}s: {seen[-5:]}")


@pytest.fixture
def deployed(new_container: Any, secret_env: Path, tmp_path: Path) -> tuple[Container, Path]:
    c = new_container()
    hosts = site.write_hosts_file(
        tmp_path / "hosts.json", [(c.name, {**c.pyinfra_data(), **site.settings(secret_env)})]
    )
    run = pyinfra(hosts, "-y", "--json")
    assert run.returncode == 0, run.output[-3000:]
    return c, hosts


def test_logs_shows_a_services_journal_by_name_or_unit_and_refuses_an_unknown_one(
    deployed: tuple[Container, Path],
) -> None:
    c, hosts = deployed
    marker = uuid.uuid4().hex
    request(c, marker)
    time.sleep(0.5)  # journald takes the line from the service's stdout pipe

    for args in ((), ("backend",), ("egograph-backend",)):
        out = egodeploy(hosts, "logs", *args, "-n", "20")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines and all(line.startswith(f"[{c.name}] ") for line in lines), lines
        assert any(marker in line for line in lines), lines
    one = egodeploy(hosts, "logs", "-n", "1")
    assert one.returncode == 0 and len(one.stdout.splitlines()) == 1, one.stdout

    unknown = egodeploy(hosts, "logs", "pipelines")
    assert unknown.returncode == 1
    assert "SERVICE 'pipelines': no such service; expected one of backend (egograph-backend)" in (
        unknown.stderr
    )
    assert unknown.stdout == ""


def test_logs_follow_prints_new_lines_and_ends_on_ctrl_c_leaving_nothing_on_the_target(
    deployed: tuple[Container, Path],
) -> None:
    c, hosts = deployed
    follow = subprocess.Popen(
        [sys.executable, "-m", "deploys.cli", "logs", "-n", "1", "-f"],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "EGOGRAPH_HOSTS_FILE": str(hosts)},
    )
    try:
        assert follow.stdout is not None
        lines = line_reader(follow.stdout)
        read_until(lines, f"[{c.name}] ", 60)  # the last line: it is connected
        marker = uuid.uuid4().hex
        request(c, marker)
        read_until(lines, marker, 20)
        follow.send_signal(signal.SIGINT)
        assert follow.wait(timeout=15) == 0
    finally:
        follow.kill()
    # sshd hung up on the pseudo-terminal: journalctl is gone from the target
    deadline = time.monotonic() + 10
    while c.ssh("pgrep -f 'journalctl --unit'", check=False).returncode == 0:
        assert time.monotonic() < deadline, "journalctl still runs on the target"
        time.sleep(0.5)
