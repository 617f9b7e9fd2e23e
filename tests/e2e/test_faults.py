"""Faults: a clear error, nothing lost, the service left running, a rerun converges, and the
run after that shows 0 changes."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import site
from tests.sandbox.app import site as app_site
from tests.sandbox.container import Container
from tests.sandbox.runner import PyinfraRun, drift, pyinfra

pytestmark = pytest.mark.e2e

HEALTH = "curl -fsS http://127.0.0.1:8000/health"


def hosts_for(tmp_path: Path, c: Container, env: Path, **overrides: Any) -> Path:
    data = {**c.pyinfra_data(), **site.settings(env), **overrides}
    return site.write_hosts_file(tmp_path / "hosts.json", [(c.name, data)])


def converged(hosts: Path, deploy: str = "deploys/prod.py") -> PyinfraRun:
    run = pyinfra(hosts, "-y", "--json", deploy=deploy)
    assert run.returncode == 0, run.output[-3000:]
    return run


def assert_idempotent(hosts: Path) -> None:
    again = pyinfra(hosts, "-y", "--json")
    assert again.returncode == 0, again.output[-3000:]
    assert again.totals()["success"] == 0, again.changed_ops()


def main_pid(c: Container) -> str:
    return c.ssh("systemctl show -p MainPID --value egograph-backend").stdout.strip()


def release(c: Container) -> str:
    return str(json.loads(c.ssh(HEALTH).stdout)["release"])


@pytest.fixture
def deployed(new_container: Any, secret_env: Path, tmp_path: Path) -> tuple[Container, Path]:
    app_site.publish_app("fixture")
    c = new_container()
    hosts = hosts_for(tmp_path, c, secret_env, service_health_timeout=20)
    converged(hosts)
    return c, hosts


def test_a_stale_lock_fails_loudly_and_keeps_the_running_release(
    deployed: tuple[Container, Path],
) -> None:
    c, hosts = deployed
    good_head = c.ssh("git -C /opt/egograph/repo rev-parse HEAD").stdout.strip()
    pid = main_pid(c)
    pyproject = (app_site.FIXTURE_APP / "egograph/backend/pyproject.toml").read_text()
    app_site.publish_app(
        "stale lock",
        {
            "egograph/backend/pyproject.toml": pyproject.replace(
                '"duckdb==1.4.3",', '"duckdb==1.4.3",\n    "six==1.16.0",'
            ),
            "egograph/backend/__init__.py": 'RELEASE = "stale"\n',
        },
    )

    failed = pyinfra(hosts, "-y", deploy="deploys/update.py")

    assert failed.returncode != 0
    assert "needs to be updated, but `--locked` was provided" in failed.output
    # shown as it came (the sync's output is streamed), and not once more after the failure
    assert failed.output.count("needs to be updated, but `--locked` was provided") == 1
    assert "the services were not restarted" in failed.output
    assert c.ssh("git -C /opt/egograph/repo rev-parse HEAD").stdout.strip() == good_head
    assert main_pid(c) == pid and release(c) == "1"

    app_site.publish_app("lock fixed")  # the fixture again: lock and pyproject agree
    converged(hosts)
    assert_idempotent(hosts)


def test_a_release_that_crashes_at_import_is_rolled_back_at_once_and_not_redeployed(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container()
    # A long health timeout: the crash, not the deadline, must end the wait.
    hosts = hosts_for(tmp_path, c, secret_env, service_health_timeout=300)
    converged(hosts)
    good_head = c.ssh("git -C /opt/egograph/repo rev-parse HEAD").stdout.strip()
    bad = app_site.publish_app("broken", app_site.crash_at_import("backend"))

    started = time.monotonic()
    failed = pyinfra(hosts, "-y", deploy="deploys/update.py")
    took = time.monotonic() - started

    assert failed.returncode != 0
    assert "egograph-backend.service is crash-looping: it exited (status 1" in failed.output
    assert "this release cannot start" in failed.output  # the journal lines
    assert f"ROLLED BACK: release {bad} failed (egograph-backend)" in failed.output
    assert took < 120, f"the failed update took {took:.0f}s: it waited for the timeout"
    assert c.ssh("git -C /opt/egograph/repo rev-parse HEAD").stdout.strip() == good_head
    assert release(c) == "1"
    marker = json.loads(c.ssh("cat /var/lib/egograph-deploy/release.rolled-back.json").stdout)
    refusal = f"release {bad} was rolled back at {marker['at']}: not deploying it again"

    # Neither the next run nor the drift check deploys it again, or calls it in sync.
    again = pyinfra(hosts, "-y", deploy="deploys/update.py")
    assert again.returncode != 0 and refusal in again.output, again.output[-3000:]
    code, report, out = drift(hosts)
    assert (code, report["status"]) == (2, "rolled_back"), out[-3000:]
    assert refusal in report["rolled_back"][c.name]
    assert release(c) == "1"

    # Asked explicitly, it is tried once more (and rolled back once more).
    retried = pyinfra(
        hosts, "-y", "--data", "service_retry_rolled_back=True", deploy="deploys/update.py"
    )
    assert f"ROLLED BACK: release {bad} failed (egograph-backend)" in retried.output
    assert release(c) == "1"

    app_site.publish_app("fixed", {"egograph/backend/__init__.py": 'RELEASE = "fixed"\n'})
    converged(hosts)
    assert release(c) == "fixed"
    assert c.ssh("ls /var/lib/egograph-deploy/").stdout.count("rolled-back") == 0
    assert_idempotent(hosts)


def test_a_unit_whose_start_limit_is_spent_is_still_restarted_by_the_next_release(
    deployed: tuple[Container, Path],
) -> None:
    """A crash loop spends systemd's start rate limit (5 starts in 10 s by default) and the
    rollback's restart adds one; the deploy's restart of the next release must not be
    refused for it ("Start request repeated too quickly") and taken for that release's
    failure. Here a drop-in sets 3 starts in 5 minutes, so the limit stays spent however
    long the run takes to reach its restart; the counter is flushed (reset-failed, systemd
    src/core/unit.c unit_reset_failed) and 3 restarts spend it with the service running."""
    c, hosts = deployed
    c.ssh(
        "mkdir -p /etc/systemd/system/egograph-backend.service.d && printf "
        "'[Unit]\\nStartLimitIntervalSec=300\\nStartLimitBurst=3\\n' "
        "> /etc/systemd/system/egograph-backend.service.d/start-limit.conf && "
        "systemctl daemon-reload && systemctl reset-failed egograph-backend && "
        "for i in 1 2 3; do systemctl restart egograph-backend; done"
    )
    c.ssh(f"for i in $(seq 50); do {HEALTH} && exit 0; sleep 0.2; done; exit 1")

    app_site.publish_app("next", {"egograph/backend/__init__.py": 'RELEASE = "next"\n'})
    updated = pyinfra(hosts, "-y", deploy="deploys/update.py")
    assert updated.returncode == 0, updated.output[-3000:]
    assert release(c) == "next"
    assert_idempotent(hosts)


def test_env_file_deleted_and_unit_masked_on_the_server_are_repaired(
    deployed: tuple[Container, Path],
) -> None:
    c, hosts = deployed
    c.ssh("rm /opt/egograph/repo/egograph/backend/.env")
    c.ssh("systemctl stop egograph-backend && systemctl mask --runtime egograph-backend")

    converged(hosts)

    assert c.ssh("stat -c %a /opt/egograph/repo/egograph/backend/.env").stdout.strip() == "600"
    assert c.ssh("systemctl is-enabled egograph-backend").stdout.strip() == "enabled"
    assert release(c) == "1"
    assert_idempotent(hosts)


def _when_target_runs(
    c: Container, pattern: str, action: Any, timeout: float = 120
) -> threading.Thread:
    """In the background, wait until a process matching ``pattern`` runs on the target, then
    act (bounded: polls every 0.2 s for at most ``timeout`` seconds). Write the pattern so
    that it does not match itself, e.g. ``[u]v sync``: pgrep runs in a shell whose command
    line contains it."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                c.ssh(
                    f"pgrep -f {pattern!r} >/dev/null && echo yes", check=False, timeout=10
                ).stdout.strip()
                == "yes"
            ):
                action()
                return
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_dropped_ssh_connection_mid_run_loses_nothing_and_a_rerun_converges(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container()
    hosts = hosts_for(tmp_path, c, secret_env)
    # Cut every SSH session into the container while uv sync is running.
    watcher = _when_target_runs(
        c,
        "[u]v sync --all-packages",
        lambda: c.ssh("pkill -f 'sshd-session: root|sshd: root@'", check=False),
    )
    interrupted = pyinfra(hosts, "-y")
    watcher.join(timeout=5)
    assert interrupted.returncode != 0, "the run was expected to lose its connection"

    converged(hosts)
    assert release(c) == "1"
    assert_idempotent(hosts)


def test_a_reboot_mid_run_loses_nothing_and_a_rerun_converges(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container()
    hosts = hosts_for(tmp_path, c, secret_env)
    watcher = _when_target_runs(c, "[u]v sync --all-packages", lambda: c.stop(timeout=20))
    interrupted = pyinfra(hosts, "-y")
    watcher.join(timeout=40)
    assert interrupted.returncode != 0, "the run was expected to fail with the reboot"
    c.start()

    converged(hosts)
    assert release(c) == "1"
    assert_idempotent(hosts)


def test_a_held_dpkg_lock_is_waited_for_then_reported(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container()
    hosts = hosts_for(tmp_path, c, secret_env, apt_lock_timeout=5)
    # Another apt holds the lock (like unattended-upgrades would): dpkg's locks are fcntl
    # locks, so take one the same way, in a transient unit.
    c.ssh(
        "systemd-run --unit=hold-dpkg-lock python3 -c 'import fcntl, time; "
        'f = open("/var/lib/dpkg/lock-frontend", "w"); fcntl.lockf(f, fcntl.LOCK_EX); '
        "time.sleep(60)'"
    )
    time.sleep(0.5)

    failed = pyinfra(hosts, "-y")

    assert failed.returncode != 0
    assert "lock" in failed.output.lower() and "lock-frontend" in failed.output
    c.ssh("systemctl stop hold-dpkg-lock", check=False)
    converged(hosts)
    assert_idempotent(hosts)
