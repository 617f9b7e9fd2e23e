"""System packages' settings (runbook §2)."""

from __future__ import annotations

from dataclasses import dataclass

from ..common.checks import (
    APT_PACKAGE,
    int_range,
    list_of,
    matches,
)
from ..common.setting import setting


@dataclass(frozen=True)
class PackageSettings:
    """System packages (runbook §2)."""

    apt_packages: list[str] = setting(
        ["git", "curl", "ca-certificates"],
        form="a list of Debian package names, e.g. ['git', 'curl']",
        doc="Packages installed with apt",
        check=list_of(matches(APT_PACKAGE)),
    )
    apt_cache_time: int = setting(
        86400,
        form="an integer number of seconds from 0 to 31536000",
        doc="apt lists younger than this are not refreshed (no `apt update` on every run)",
        check=int_range(0, 31536000),
    )
    apt_lock_timeout: int = setting(
        300,
        form="an integer number of seconds from 0 to 3600",
        doc="How long apt waits for the dpkg lock held by another process",
        check=int_range(0, 3600),
    )
