"""System packages (runbook §2: `apt update`, `apt install -y git curl`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyinfra.api import deploy

from .operations import apt_packages

if TYPE_CHECKING:
    from ..settings import Settings

REQUIRED_PACKAGES = ("git", "curl", "ca-certificates")
"""What the deploy itself needs on the target: git for the checkout, curl for health checks."""


@deploy("System packages")
def install_packages(settings: Settings) -> None:
    wanted = list(dict.fromkeys([*REQUIRED_PACKAGES, *settings.apt_packages]))
    apt_packages(
        name=f"Install {', '.join(wanted)}",
        packages=wanted,
        cache_time=settings.apt_cache_time,
        lock_timeout=settings.apt_lock_timeout,
    )
