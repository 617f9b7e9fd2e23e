"""uv and the app's environment (runbook §2 uv install, §4 `uv sync --all-packages`)."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from pyinfra.api import deploy

from ..repo.commit import Commit
from .operations import uv_binary, uv_sync

if TYPE_CHECKING:
    from ..settings import Settings


def env_digest(settings: Settings) -> str:
    """Identifies what a sync depends on besides the checkout: uv's version and environment."""
    blob = json.dumps({"uv": settings.uv_version, "env": settings.uv_environment}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@deploy("uv")
def install_uv(settings: Settings) -> None:
    uv_binary(
        name=f"Install uv {settings.uv_version} at {settings.uv_path}",
        version=settings.uv_version,
        path=settings.uv_path,
        profile=settings.uv_profile,
        method=settings.uv_install_method,
        installer_url=settings.uv_installer_url,
        wheel_index=settings.uv_wheel_index,
    )


@deploy("uv sync")
def sync_environment(settings: Settings, commit: Commit) -> None:
    uv_sync(
        name=f"uv sync --all-packages --locked in {settings.repo_path}",
        repo_path=settings.repo_path,
        uv=settings.uv_path,
        environment=settings.uv_environment,
        env_digest=env_digest(settings),
        ref=settings.repo_branch,
        commit=commit,
    )
