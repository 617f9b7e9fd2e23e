"""The settings for a whole deploy in the sandbox, composed from the stand-ins' sites.

- the app's outside world: the fixture app's repository, DuckDB's extension repository, the
  env files (app/site.py)
- Tailscale: the real package in a signed apt repository over HTTP and the sandbox's
  headscale (tailscale/site.py)
- the emulated Proxmox node (pve/site.py) and the Docker VM stand-in (docker/site.py) add
  their own settings on top

and the hosts file the inventory reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import paths
from .app import site as app_site
from .tailscale import site as tailscale_site

BACKEND = {
    "name": "backend",
    "unit": "egograph-backend",
    "description": "EgoGraph Backend",
    "module": "backend.main:app",
    "port": 8000,
    "env_file": "egograph/backend/.env",
    "health_path": "/health",
}
PIPELINES = {
    "name": "pipelines",
    "unit": "egograph-pipelines",
    "description": "EgoGraph Pipelines",
    "module": "pipelines.app:create_app",
    "factory": True,
    "port": 8001,
    "env_file": "egograph/pipelines/.env",
    "health_path": "/v1/health",
    "publish": "https",
    "publish_port": 8443,
}
"""The fixture's two services, as the README's example runs upstream's."""


def settings(
    env_file: Path, pipelines_env: Path | None = None, *, tailnet: str = tailscale_site.CERTS
) -> dict[str, Any]:
    """Settings that point the deploy at the sandbox's outside world (override group_data):
    the backend service, and the pipelines service beside it given its env file; the node
    joins the sandbox tailnet ``tailnet`` (see tailscale/site.py)."""
    services = [{**BACKEND, "env_source": {"file": str(env_file)}}]
    if pipelines_env is not None:
        services.append({**PIPELINES, "env_source": {"file": str(pipelines_env)}})
    return {
        "repo_url": f"git://{paths.HOST_IP}/{app_site.APP_REPO}",
        "uv_install_method": "wheel",
        # uv must trust the host's CA (TLS-intercepting egress), and use the distro Python.
        "uv_environment": {"UV_SYSTEM_CERTS": "1", "UV_PYTHON_DOWNLOADS": "never"},
        "duckdb_extension_repository": app_site.publish_duckdb_extensions(),
        "services": services,
        # Tailscale: the real package from the host's signed repository, the sandbox's
        # headscale with a pre-auth key of ``tailnet``.
        **tailscale_site.settings(tailnet),
    }


def write_hosts_file(path: Path, hosts: list[tuple[str, dict[str, Any]]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"hosts": [{"name": n, "data": d} for n, d in hosts]}, indent=2))
    return path
