"""Hardened service mode: both services as one system user with systemd sandboxing, in a
container; the app finds DuckDB's httpfs in that user's HOME and writes its data next to
the checkout, as the real app does, reading no variable the deploy made up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import site
from tests.sandbox.app import site as app_site
from tests.sandbox.container import Container
from tests.sandbox.runner import pyinfra

pytestmark = pytest.mark.e2e

HOME = "/var/lib/egograph"
SERVICES = (
    # unit, health URL, the file the app keeps under /opt/egograph/data
    ("egograph-backend", "http://127.0.0.1:8000/health", "backend/chat.sqlite"),
    ("egograph-pipelines", "http://127.0.0.1:8001/v1/health", "pipelines/state.sqlite3"),
)


def in_namespace(c: Container, unit: str, command: str) -> Any:
    """``command`` in the mount namespace of ``unit``'s main process (what it sees)."""
    pid = c.ssh(f"systemctl show -p MainPID --value {unit}").stdout.strip()
    return c.ssh(f"nsenter -t {pid} -m sh -c '{command}' 2>&1", check=False)


def test_hardened_services_load_httpfs_from_their_home_and_write_only_their_data(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container()
    pipelines_env = app_site.write_secret_env(f"pipelines-{tmp_path.name}", app="pipelines")
    base = site.settings(secret_env, pipelines_env)
    for svc in base["services"]:
        svc.update(user="egograph", group="egograph")
    data = {**c.pyinfra_data(), **base, "service_hardening": True}
    hosts = site.write_hosts_file(tmp_path / "hosts.json", [(c.name, data)])

    first = pyinfra(hosts, "-y", "--json")
    assert first.returncode == 0, first.output[-3000:]
    again = pyinfra(hosts, "-y", "--json")
    assert again.returncode == 0, again.output[-3000:]
    assert again.totals()["success"] == 0, again.changed_ops()
    assert again.totals()["error"] == 0

    assert c.ssh("getent passwd egograph | cut -d: -f6,7").stdout.strip() == (
        f"{HOME}:/usr/sbin/nologin"
    )
    # httpfs where the service user's DuckDB looks (its HOME), not only in root's.
    ext = (
        f"{HOME}/.duckdb/extensions/v{app_site.DUCKDB_VERSION}/linux_amd64/httpfs.duckdb_extension"
    )
    assert c.ssh(f"stat -c %U {ext}").stdout.strip() == "egograph"
    assert c.ssh("ls /root/.duckdb 2>&1", check=False).returncode != 0
    assert c.ssh("stat -c '%U %a' /opt/egograph/data").stdout.strip() == "egograph 750"

    for unit, url, db_file in SERVICES:
        health = json.loads(c.ssh(f"curl -fsS {url}").stdout)
        assert health["status"] == "ok" and health["httpfs"] is True, (unit, health)
        assert health["httpfs_error"] is None
        assert (health["user"], health["home"]) == ("egograph", HOME)
        assert health["data_dir"] == str(Path("/opt/egograph/data", db_file).parent)
        assert health["data_dir_writable"] is True
        assert c.ssh(f"stat -c %U /opt/egograph/data/{db_file}").stdout.strip() == "egograph"

        # The sandbox really applies, seen from inside the service's own mount namespace.
        pid = c.ssh(f"systemctl show -p MainPID --value {unit}").stdout.strip()
        assert "NoNewPrivs:\t1" in c.ssh(f"cat /proc/{pid}/status").stdout
        for path in ("/opt/egograph/probe", "/opt/egograph/repo/probe", "/opt/egograph/repo/.venv/probe"):  # fmt: skip
            write = in_namespace(c, unit, f"touch {path}")
            assert write.returncode != 0 and "Read-only file system" in write.stdout, (unit, path)
        for path in (f"/opt/egograph/data/probe-{unit}", f"{HOME}/probe", "/var/cache/egograph/probe"):  # fmt: skip
            assert in_namespace(c, unit, f"touch {path}").returncode == 0, (unit, path)
        assert in_namespace(c, unit, "ls -A /root | wc -l").stdout.strip() == "0"

        unit_text = c.ssh(f"cat /etc/systemd/system/{unit}.service").stdout
        for line in (
            "User=egograph",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "ReadWritePaths=/opt/egograph/data",
            f'Environment="HOME={HOME}"',
            'Environment="XDG_CACHE_HOME=/var/cache/egograph"',
            "StateDirectory=egograph",
        ):
            assert line in unit_text, (unit, line)
        assert "EGOGRAPH_DATA_DIR" not in unit_text and "DUCKDB" not in unit_text

    backend_unit = c.ssh("cat /etc/systemd/system/egograph-backend.service").stdout
    assert "ExecStart=/opt/egograph/repo/.venv/bin/uvicorn backend.main:app " in backend_unit
    pipelines_unit = c.ssh("cat /etc/systemd/system/egograph-pipelines.service").stdout
    assert (
        "ExecStart=/opt/egograph/repo/.venv/bin/uvicorn pipelines.app:create_app --factory "
        in pipelines_unit
    )
    # The pipelines app answers /v1/health only, as upstream's; its env file reached it.
    missing = c.ssh("curl -s -o /dev/null -w %{http_code} http://127.0.0.1:8001/health")
    assert missing.stdout.strip() == "404"
    assert json.loads(c.ssh("curl -fsS http://127.0.0.1:8001/v1/health").stdout)["api_key_set"]
    # The env files stay root's: systemd reads them before dropping privileges.
    for member in ("backend", "pipelines"):
        env_file = f"/opt/egograph/repo/egograph/{member}/.env"
        assert c.ssh(f"stat -c '%U %a' {env_file}").stdout.strip() == "root 600"
    assert app_site.CANARY not in first.output + again.output
