"""The systemd units the deploy writes: the runbook's unit as root, the factory flag, and
what a hardened unit gives its service (HOME, XDG dirs, the app's data dir writable)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deploys.services import render_unit
from deploys.settings import Settings, raw_defaults, validate
from tests.sandbox import site

PROJECT = Path(__file__).resolve().parents[3]
PIPELINES = site.PIPELINES


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    data = raw_defaults()
    env = tmp_path / "app.env"
    env.write_text("CORS_ORIGINS=http://localhost:5173\n")
    data["services"][0]["env_source"] = {"file": str(env)}
    data["services"].append({**PIPELINES, "env_source": {"file": str(env)}})
    data.update(overrides)
    return validate(data)


def hardened(tmp_path: Path, **changes: Any) -> Settings:
    data = raw_defaults()
    services = [{**data["services"][0]}, {**PIPELINES}]
    for svc in services:
        svc.update(user="egograph", group="egograph")
    return settings(
        tmp_path,
        service_hardening=True,
        uv_environment={"UV_PYTHON_DOWNLOADS": "never"},
        services=[{**svc, "env_source": {"file": str(tmp_path / "app.env")}} for svc in services],
        **changes,
    )


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_the_runbooks_unit_runs_uv_as_root_with_nothing_invented(tmp_path: Path) -> None:
    s = settings(tmp_path)
    unit = lines(render_unit(s, s.services[0]))
    assert (
        "ExecStart=/root/.local/bin/uv run --project /opt/egograph/repo --no-sync uvicorn "
        "backend.main:app --host 127.0.0.1 --port 8000" in unit
    )
    assert "EnvironmentFile=/opt/egograph/repo/egograph/backend/.env" in unit
    assert "User=root" in unit and "Group=root" in unit
    # No variable the app does not read, no sandbox, no directories systemd would make.
    text = "\n".join(unit)
    for absent in ("EGOGRAPH_DATA_DIR", "DUCKDB", "HOME=", "XDG_", "StateDirectory", "Protect"):
        assert absent not in text, absent


def test_a_factory_service_gets_uvicorns_factory_flag(tmp_path: Path) -> None:
    s = settings(tmp_path)
    backend, pipelines = (lines(render_unit(s, svc)) for svc in s.services)
    assert (
        "ExecStart=/root/.local/bin/uv run --project /opt/egograph/repo --no-sync uvicorn "
        "pipelines.app:create_app --factory --host 127.0.0.1 --port 8001" in pipelines
    )
    assert "EnvironmentFile=/opt/egograph/repo/egograph/pipelines/.env" in pipelines
    assert not any("--factory" in line for line in backend)


def test_a_hardened_unit_has_its_own_home_xdg_dirs_and_the_data_dir_writable(
    tmp_path: Path,
) -> None:
    s = hardened(tmp_path)
    unit = lines(render_unit(s, s.services[1]))
    for line in (
        "ExecStart=/opt/egograph/repo/.venv/bin/uvicorn pipelines.app:create_app --factory "
        "--host 127.0.0.1 --port 8001",
        "User=egograph",
        "Group=egograph",
        'Environment="HOME=/var/lib/egograph"',
        'Environment="XDG_CONFIG_HOME=/var/lib/egograph/.config"',
        'Environment="XDG_DATA_HOME=/var/lib/egograph/.local/share"',
        'Environment="XDG_STATE_HOME=/var/lib/egograph/.local/state"',
        'Environment="XDG_CACHE_HOME=/var/cache/egograph"',
        "StateDirectory=egograph",
        "StateDirectoryMode=0750",
        "CacheDirectory=egograph",
        "CacheDirectoryMode=0750",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "ReadWritePaths=/opt/egograph/data",
        'Environment="UV_PYTHON_DOWNLOADS=never"',
    ):
        assert line in unit, line
    # Writable: only what is named; the checkout is not.
    assert [line for line in unit if line.startswith("ReadWritePaths=")] == [
        "ReadWritePaths=/opt/egograph/data"
    ]
    assert not any("EGOGRAPH_DATA_DIR" in line or "DUCKDB" in line for line in unit)


def test_the_data_dir_follows_the_checkout(tmp_path: Path) -> None:
    moved = hardened(tmp_path, repo_path="/srv/ego/repo")
    assert "ReadWritePaths=/srv/ego/data" in lines(render_unit(moved, moved.services[0]))
