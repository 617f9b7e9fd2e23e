"""One run at a time: two runs at once on one container, the drift check during a run, and
a run killed with ``kill -9`` (the lock is freed with its SSH connection).

The first run is held inside its run, deterministically: another process holds dpkg's
lock (as unattended-upgrades would) and the run has a package to install, so it waits in
``apt-get`` (``apt_lock_timeout``) while holding the run lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import site
from tests.sandbox.container import Container
from tests.sandbox.runner import PROJECT, PyinfraRun, drift, pyinfra

pytestmark = pytest.mark.e2e

LOCK = "/run/egograph-deploy.lock"
EXTRA = "tree"
"""A small package the held run has to install (from the sandbox's Debian mirror)."""


def _hosts(tmp_path: Path, c: Container, env: Path, label: str, **overrides: Any) -> Path:
    data = {**c.pyinfra_data(), **site.settings(env), **overrides}
    return site.write_hosts_file(tmp_path / f"hosts-{label}.json", [(c.name, data)])


class Background:
    """``pyinfra -y <args> inventory.py deploys/prod.py`` in the background, its output in
    files (its pid is the controller pid the lock must name)."""

    def __init__(self, hosts: Path, *args: str) -> None:
        self.out = hosts.with_suffix(".stdout")
        self.err = hosts.with_suffix(".stderr")
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pyinfra", "-y", *args, "inventory.py", "deploys/prod.py"],
                cwd=PROJECT,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "EGOGRAPH_HOSTS_FILE": str(hosts)},
            )
        self.pid = self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def finished(self, timeout: float = 300) -> PyinfraRun:
        self.proc.wait(timeout=timeout)
        return PyinfraRun(self.proc.returncode, self.out.read_text(), self.err.read_text())


def _hold_dpkg(c: Container) -> None:
    c.ssh(
        "systemd-run --unit=hold-dpkg-lock python3 -c 'import fcntl, time; "
        'f = open("/var/lib/dpkg/lock-frontend", "w"); fcntl.lockf(f, fcntl.LOCK_EX); '
        "time.sleep(300)'"
    )


def _release_dpkg(c: Container) -> None:
    c.ssh("systemctl stop hold-dpkg-lock", check=False)


def _record(c: Container) -> dict[str, Any]:
    """The lock file's holder record (``<sshd pid> <json>``), {} when there is none."""
    line = c.ssh(f"cat {LOCK} 2>/dev/null || true").stdout.strip()
    _, _, text = line.partition(" ")
    return json.loads(text) if text else {}


def _held(c: Container) -> bool:
    return c.ssh(f"flock -n {LOCK} true", check=False).returncode != 0


def _wait_until_holding(c: Container, run: Background, timeout: float = 120) -> None:
    """Until ``run`` holds the lock and waits in apt-get for dpkg's lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert run.running(), run.finished().output[-3000:]
        waiting = c.ssh("pgrep -f '[a]pt-get .*install' >/dev/null && echo yes", check=False)
        if _record(c).get("pid") == run.pid and waiting.stdout.strip() == "yes" and _held(c):
            return
        time.sleep(0.3)
    raise AssertionError("the first run never held the lock while waiting for dpkg")


def _freed_within(c: Container, seconds: float) -> None:
    start = time.monotonic()
    while _held(c):
        assert time.monotonic() - start < seconds, f"the lock was not freed within {seconds} s"
        time.sleep(0.1)


@pytest.fixture
def deployed(new_container: Any, secret_env: Path, tmp_path: Path) -> tuple[Container, Path]:
    c = new_container()
    base = _hosts(tmp_path, c, secret_env, "base")
    first = pyinfra(base, "-y", "--json")
    assert first.returncode == 0, first.output[-3000:]
    return c, base


def test_two_runs_at_once_one_waits_then_fails_naming_the_holder_or_gets_the_lock_after(
    deployed: tuple[Container, Path], secret_env: Path, tmp_path: Path
) -> None:
    c, base = deployed
    noop = pyinfra(base, "-y", "-vv")
    assert noop.returncode == 0 and noop.output.count(">>> ") == 1, noop.output[-3000:]
    _freed_within(c, 3)  # the runs ended: their holders went with their connections

    packages = {"apt_packages": ["git", "curl", "ca-certificates", EXTRA], "apt_lock_timeout": 120}
    holding = _hosts(tmp_path, c, secret_env, "holding", **packages)
    short = _hosts(tmp_path, c, secret_env, "short", run_lock_wait=3)
    patient = _hosts(tmp_path, c, secret_env, "patient", run_lock_wait=240, **packages)

    _hold_dpkg(c)
    try:
        one = Background(holding)
        _wait_until_holding(c, one)
        record = _record(c)
        assert record["entry"] == "deploys/prod.py" and record["user"] == "root"
        assert record["host"] == socket.gethostname() and record["started"].endswith("Z")

        # A second run waits run_lock_wait (3 s), then fails before changing anything.
        started = time.monotonic()
        refused = pyinfra(short, "-y", "-vv")
        waited = time.monotonic() - started
        assert refused.returncode != 0
        assert waited >= 3, waited
        sent = [line for line in refused.output.splitlines() if ">>> " in line]
        assert len(sent) == 2 and "EGOGRAPH-DEPLOY-SECTION" in sent[0], sent  # the read
        assert "another deploy holds the run lock" in sent[1] and "exit 1" in sent[1]
        holder = f"deploys/prod.py run by root@{socket.gethostname()}, pid {one.pid}, started "
        assert f"another deploy holds the run lock {LOCK} on this host: {holder}" in refused.output
        assert "waited 3 s (run_lock_wait)" in refused.output

        # The drift check does not wait and takes nothing: it says a run is in progress.
        code, report, output = drift(short)
        assert code == 1, output[-3000:]
        assert f"a deploy is running on this host: {holder}" in report["error"]

        # A third run with a long wait gets the lock once the first ends.
        three = Background(patient, "--json")
        time.sleep(2)
        assert three.running() and _record(c).get("pid") == one.pid
    finally:
        _release_dpkg(c)
    one_done = one.finished()
    assert one_done.returncode == 0, one_done.output[-3000:]
    three_done = three.finished()
    assert three_done.returncode == 0, three_done.output[-3000:]
    assert three_done.totals()["success"] == 0, three_done.changed_ops()  # the first did it
    assert c.ssh(f"dpkg-query -W -f='${{Status}}' {EXTRA}").stdout == "install ok installed"
    _freed_within(c, 3)  # the last run's holder went with its connection


def test_a_killed_run_frees_the_lock_and_a_rerun_converges(
    deployed: tuple[Container, Path], secret_env: Path, tmp_path: Path
) -> None:
    c, _ = deployed
    holding = _hosts(
        tmp_path,
        c,
        secret_env,
        "holding",
        apt_packages=["git", "curl", "ca-certificates", EXTRA],
        apt_lock_timeout=120,
        run_lock_wait=5,
    )

    _hold_dpkg(c)
    try:
        run = Background(holding)
        _wait_until_holding(c, run)
        os.kill(run.pid, signal.SIGKILL)  # the controller dies mid-run
        run.proc.wait()
        _freed_within(c, 3)
        assert c.ssh("pgrep -f '[t]ail --pid' || true").stdout.strip() == ""
    finally:
        _release_dpkg(c)

    rerun = pyinfra(holding, "-y", "--json")
    assert rerun.returncode == 0, rerun.output[-3000:]
    again = pyinfra(holding, "-y", "--json")
    assert again.returncode == 0, again.output[-3000:]
    assert again.totals()["success"] == 0, again.changed_ops()
