"""The systemd units the deploy writes: the factory flag."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from deploys.inventory import group_data
from deploys.services import render_unit
from deploys.settings import Settings, validate

PROJECT = Path(__file__).resolve().parents[3]
PIPELINES = {
    "name": "pipelines",
    "unit": "egograph-pipelines",
    "module": "pipelines.app:create_app",
    "factory": True,
    "port": 8001,
    "env_file": "egograph/pipelines/.env",
    "health_path": "/v1/health",
}


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    data = copy.deepcopy(group_data(PROJECT / "group_data"))
    env = tmp_path / "app.env"
    env.write_text("CORS_ORIGINS=http://localhost:5173\n")
    data["services"][0]["env_source"] = {"file": str(env)}
    data["services"].append({**PIPELINES, "env_source": {"file": str(env)}})
    data.update(overrides)
    return validate(data)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_a_factory_service_gets_uvicorns_factory_flag(tmp_path: Path) -> None:
    s = settings(tmp_path)
    backend, pipelines = (lines(render_unit(s, svc)) for svc in s.services)
    assert (
        "ExecStart=/root/.local/bin/uv run --project /opt/egograph/repo --no-sync uvicorn "
        "pipelines.app:create_app --factory --host 127.0.0.1 --port 8001" in pipelines
    )
    assert "EnvironmentFile=/opt/egograph/repo/egograph/pipelines/.env" in pipelines
    assert not any("--factory" in line for line in backend)
