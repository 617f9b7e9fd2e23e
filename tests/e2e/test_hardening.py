"""Hardened service mode: a dedicated system user and systemd sandboxing, in a container."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import site
from tests.sandbox.runner import pyinfra

pytestmark = pytest.mark.e2e


def test_hardened_service_serves_and_writes_only_its_data_dir(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container()
    base = site.settings(secret_env)
    for svc in base["services"]:
        svc.update(user="egograph", group="egograph")
    hosts = site.write_hosts_file(
        tmp_path / "hosts.json",
        [
            (
                c.name,
                {
                    **c.pyinfra_data(),
                    **base,
                    "service_hardening": True,
                    "duckdb_extension_directory": "/opt/egograph/duckdb-extensions",
                },
            )
        ],
    )

    first = pyinfra(hosts, "-y", "--json")
    assert first.returncode == 0, first.output[-3000:]
    again = pyinfra(hosts, "-y", "--json")
    assert again.totals()["success"] == 0, again.changed_ops()

    health = json.loads(c.ssh("curl -fsS http://127.0.0.1:8000/health").stdout)
    assert health["status"] == "ok" and health["httpfs"] is True, health
    assert health["user"] == "egograph"
    assert health["data_dir_writable"] is True
    assert c.ssh("stat -c %U /var/lib/egograph/health.duckdb").stdout.strip() == "egograph"
    # The sandbox really applies, seen from inside the service's own mount namespace.
    pid = c.ssh("systemctl show -p MainPID --value egograph-backend").stdout.strip()
    assert "NoNewPrivs:\t1" in c.ssh(f"cat /proc/{pid}/status").stdout
    in_ns = f"nsenter -t {pid} -m"
    write_opt = c.ssh(f"{in_ns} touch /opt/egograph/probe 2>&1", check=False)
    assert write_opt.returncode != 0 and "Read-only file system" in write_opt.stdout
    assert c.ssh(f"{in_ns} ls -A /root 2>&1 | wc -l", check=False).stdout.strip() == "0"
    assert c.ssh(f"{in_ns} touch /var/lib/egograph/probe", check=False).returncode == 0
    unit = c.ssh("cat /etc/systemd/system/egograph-backend.service").stdout
    for line in (
        "User=egograph",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ReadWritePaths=/var/lib/egograph",
        "ExecStart=/opt/egograph/repo/.venv/bin/uvicorn backend.main:app",
    ):
        assert line in unit
    # The env file stays root's: systemd reads it before dropping privileges.
    assert c.ssh("stat -c '%U %a' /opt/egograph/repo/backend/.env").stdout.strip() == "root 600"
