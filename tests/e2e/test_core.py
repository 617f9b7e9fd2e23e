"""Converge → idempotence → verify → change a setting, on a real systemd container over SSH.

The deploy runs as a user runs it (`pyinfra inventory.py deploys/prod.py`); assertions read
pyinfra's own JSON report and check the target independently (testinfra over SSH), never
through the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import testinfra

from tests.sandbox import paths, site
from tests.sandbox.app import site as app_site
from tests.sandbox.container import Container
from tests.sandbox.runner import PyinfraRun, pyinfra

pytestmark = pytest.mark.e2e

UV_VERSION = "0.13.9"


def hosts_file(tmp_path: Path, c: Container, env: Path, **overrides: Any) -> Path:
    data = {**c.pyinfra_data(), **site.settings(env), **overrides}
    return site.write_hosts_file(tmp_path / "hosts.json", [(c.name, data)])


def health(c: Container, port: int = 8000) -> dict[str, Any]:
    out = c.ssh(f"curl -fsS http://127.0.0.1:{port}/health").stdout
    return dict(json.loads(out))


def assert_no_canary(*runs: PyinfraRun) -> None:
    for run in runs:
        assert app_site.CANARY not in run.output


def test_dry_run_on_a_fresh_container_changes_nothing(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container()
    hosts = hosts_file(tmp_path, c, secret_env)

    dry = pyinfra(hosts, "--dry", "--json")

    assert dry.returncode == 0, dry.stderr
    would_change = dry.changed_ops()
    for op in (
        "System packages",
        "uv |",
        "App repository",
        "Env files",
        "uv sync",
        "DuckDB",
        "Unit /etc/systemd",
        "egograph-backend enabled",
    ):
        assert any(op in name for name in would_change), (op, would_change)
    assert dry.report["results"] is None
    probe = c.ssh(
        "test -e /opt/egograph || test -e /root/.local/bin/uv || "
        "dpkg -s git >/dev/null 2>&1; echo $?",
        check=False,
    )
    assert probe.stdout.strip() == "1", "a dry run touched the container"
    assert_no_canary(dry)


def test_converge_is_idempotent_verified_and_follows_setting_changes(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container()
    hosts = hosts_file(tmp_path, c, secret_env)

    first = pyinfra(hosts, "-y", "--json")
    assert first.returncode == 0, first.output[-3000:]
    assert first.totals()["error"] == 0
    assert first.totals()["success"] >= 8

    second = pyinfra(hosts, "-y", "--json")
    assert second.returncode == 0, second.output[-3000:]
    assert second.totals()["success"] == 0, second.changed_ops()
    assert second.totals()["error"] == 0

    dry = pyinfra(hosts, "--dry", "--json")
    assert dry.returncode == 0
    assert dry.changed_ops() == []

    # A host in sync is read in ONE remote command, by a run and by a dry run (a drift
    # check): deploys/common/snapshot.py. The count is noise-free, so it is asserted here;
    # the time it buys is measured by `make bench`.
    for flags in (("-y", "-vv"), ("--dry", "-vv")):
        verbose = pyinfra(hosts, *flags)
        assert verbose.returncode == 0, verbose.output[-3000:]
        assert verbose.output.count(">>> ") == 1, verbose.output[-3000:]

    # --- verify, independently of the deploy's own facts ---
    target = testinfra.get_host(f"ssh://{c.name}", ssh_config=str(paths.SSH_CONFIG))
    env_file = target.file("/opt/egograph/repo/egograph/backend/.env")
    assert env_file.is_file and env_file.mode == 0o600
    assert env_file.user == "root" and env_file.group == "root"
    assert "CORS_ORIGINS=http://localhost:5173" in env_file.content_string
    unit = target.file("/etc/systemd/system/egograph-backend.service")
    assert unit.mode == 0o644
    assert (
        "ExecStart=/root/.local/bin/uv run --project /opt/egograph/repo --no-sync uvicorn "
        "backend.main:app --host 127.0.0.1 --port 8000" in unit.content_string
    )
    assert "Environment=USE_ENV_FILE=false" in unit.content_string
    assert "EnvironmentFile=/opt/egograph/repo/egograph/backend/.env" in unit.content_string
    svc = target.service("egograph-backend")
    assert svc.is_enabled and svc.is_running
    assert target.package("git").is_installed and target.package("curl").is_installed
    assert target.check_output("/root/.local/bin/uv --version").startswith(f"uv {UV_VERSION}")
    assert 'export PATH="/root/.local/bin:$PATH"' in target.file("/root/.profile").content_string
    head = target.check_output("git -C /opt/egograph/repo rev-parse HEAD")
    assert head == app_site.app_head()
    httpfs = target.check_output(
        '/opt/egograph/repo/.venv/bin/python -c "import duckdb; print(duckdb.sql('
        "\\\"select installed from duckdb_extensions() where extension_name='httpfs'\\\")"
        '.fetchone()[0])"'
    )
    assert httpfs == "True"
    answer = health(c)
    assert answer["status"] == "ok" and answer["httpfs"] is True, answer
    assert answer["cors_origins"] == "http://localhost:5173"

    # --- change one setting: the port. Only the dependent operations change. ---
    services = site.settings(secret_env)["services"]
    services[0]["port"] = 8001
    hosts = hosts_file(tmp_path, c, secret_env, services=services)
    moved = pyinfra(hosts, "-y", "--json")
    assert moved.returncode == 0, moved.output[-3000:]
    assert sorted(moved.changed_ops()) == sorted(
        [
            "Services | Unit /etc/systemd/system/egograph-backend.service",
            "Services | Reload systemd when a unit changed",
            "Services | egograph-backend enabled, running the current release, healthy",
            # tailscale serve follows the service to its new port
            "Tailscale serve | Publish backend on HTTPS 443",
        ]
    )
    assert health(c, 8001)["status"] == "ok"
    assert c.ssh("curl -fsS http://127.0.0.1:8000/health", check=False).returncode != 0

    # --- change an env value: the env file and the restart, nothing else ---
    app_site.write_secret_env(secret_env.stem, {"CORS_ORIGINS": "https://new.example"})
    changed_env = pyinfra(hosts, "-y", "--json")
    assert changed_env.returncode == 0, changed_env.output[-3000:]
    assert sorted(changed_env.changed_ops()) == sorted(
        [
            "Env files | Env file for egograph-backend (/opt/egograph/repo/egograph/backend/.env, 0600)",
            "Services | egograph-backend enabled, running the current release, healthy",
        ]
    )
    assert health(c, 8001)["cors_origins"] == "https://new.example"

    # --- an extension DuckDB has built in (json, in the pip wheel: no file to find) is asked
    # about once, then recognised without Python: the run after changes nothing ---
    hosts = hosts_file(
        tmp_path, c, secret_env, services=services, duckdb_extensions=["httpfs", "json"]
    )
    builtin = pyinfra(hosts, "-y", "--json")
    assert builtin.returncode == 0, builtin.output[-3000:]
    assert builtin.changed_ops() == ["DuckDB | DuckDB extensions httpfs, json for root"]
    marker = c.ssh("cat /var/lib/egograph-deploy/duckdb-builtin-1.4.3-linux_amd64").stdout
    assert marker.split() == ["json"]
    settled = pyinfra(hosts, "-y", "-vv")
    assert settled.returncode == 0, settled.output[-3000:]
    assert settled.output.count(">>> ") == 1, settled.output[-3000:]

    again = pyinfra(hosts, "-y", "--json")
    assert again.totals()["success"] == 0, again.changed_ops()
    assert_no_canary(first, second, dry, moved, changed_env, again)
