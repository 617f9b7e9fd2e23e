"""The rules a hardened service's settings must follow (``service_hardening``): checked
with the other settings, before anything is touched."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..repo.settings import app_data_dir
from .settings import Service, hardened_home


def hardening_errors(data: Mapping[str, Any], services: tuple[Service, ...]) -> list[str]:
    """Hardened services cannot reach /root (ProtectHome) and must not run as root; they
    share the app's one data directory, so they run as one user."""
    if data.get("service_hardening") is not True:
        return []
    errors = [
        f"services[{i}].user: got 'root'; expected a dedicated system user with "
        "service_hardening = True"
        for i, svc in enumerate(services)
        if svc.user == "root"
    ]
    accounts = list(dict.fromkeys((s.user, s.group) for s in services))
    repo_path = data.get("repo_path")
    if len(accounts) > 1 and isinstance(repo_path, str):
        errors.append(
            f"services[*].user/group: got {', '.join(f'{u}:{g}' for u, g in accounts)}; "
            "expected one user and group for every service with service_hardening = True "
            f"(they all write the app's data dir {app_data_dir(repo_path)})"
        )
    # The deploy's own stamps live in /var/lib/egograph-deploy (root only): a user of that
    # name would be handed them as its StateDirectory=.
    errors += [
        f"services[{i}].user: got {svc.user!r}; expected another name (its HOME "
        f"{hardened_home(svc.user)} is the deploy's own state directory)"
        for i, svc in enumerate(services)
        if hardened_home(svc.user) == "/var/lib/egograph-deploy"
    ]
    env = data.get("uv_environment") or {}
    no_downloads = str(env.get("UV_PYTHON_DOWNLOADS", "")).lower() in ("never", "0", "false")
    install_dir = str(env.get("UV_PYTHON_INSTALL_DIR", ""))
    if not no_downloads and (not install_dir or install_dir.startswith("/root")):
        errors.append(
            "uv_environment: with service_hardening = True, expected UV_PYTHON_DOWNLOADS="
            "'never' (the distro's Python) or UV_PYTHON_INSTALL_DIR outside /root: a "
            "uv-managed Python under /root is unreachable for the service user"
        )
    return errors
