"""Every setting of the deploy, composed from the concerns' slices, and their validation.

Each concern declares its settings beside the deploy that uses them (``deploys/<concern>/
settings.py``): one frozen dataclass field per setting with its default (the runbook's
value), form, meaning, check and secret flag. ``Settings`` is all of them in one typed
object. ``validate`` takes raw values (group data, a hosts file, ``--data``: each overrides
the defaults) and reports every bad setting at once, naming the setting and the form it
expects, unknown names included, so a typo is caught before pyinfra connects to anything.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .common.setting import Declared, SettingsError, declared, describe
from .docker.settings import DockerSettings, docker_errors
from .duckdb.settings import REMOVED as DUCKDB_REMOVED
from .duckdb.settings import DuckdbSettings
from .packages.settings import PackageSettings
from .proxmox.settings import ContainerSettings, ProxmoxSettings, proxmox_errors
from .repo.settings import RepoSettings
from .runlock.settings import RunLockSettings
from .services.hardening import hardening_errors
from .services.settings import REMOVED as SERVICES_REMOVED
from .services.settings import ServiceSettings, service_errors
from .tailscale.settings import REMOVED as TAILSCALE_REMOVED
from .tailscale.settings import TailscaleSettings, tailscale_errors
from .uv.settings import UvSettings

__all__ = ["SETTINGS", "Settings", "SettingsError", "raw_defaults", "validate"]

SLICES: tuple[tuple[str, type], ...] = (
    ("container", ContainerSettings),
    ("proxmox", ProxmoxSettings),
    ("packages", PackageSettings),
    ("uv", UvSettings),
    ("repo", RepoSettings),
    ("duckdb", DuckdbSettings),
    ("services", ServiceSettings),
    ("tailscale", TailscaleSettings),
    ("docker", DockerSettings),
    ("runlock", RunLockSettings),
)
"""The concerns in the runbook's order: the README's tables follow it."""


@dataclass(frozen=True)
class Settings(
    ContainerSettings,
    ProxmoxSettings,
    PackageSettings,
    UvSettings,
    RepoSettings,
    DuckdbSettings,
    ServiceSettings,
    TailscaleSettings,
    DockerSettings,
    RunLockSettings,
):
    """The validated settings of one host: every concern's slice in one typed object (an
    operation that needs one concern's settings can take that slice's type)."""


SETTINGS: tuple[Declared, ...] = tuple(
    item for concern, cls in SLICES for item in declared(cls, concern)
)
SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}

REMOVED_SETTINGS: dict[str, str] = {**DUCKDB_REMOVED, **SERVICES_REMOVED, **TAILSCALE_REMOVED}
"""Settings that existed once, with why they went and what replaces them: a site that
still sets one is told so instead of having it ignored."""


def raw_defaults() -> dict[str, Any]:
    """Every setting at its default, as a user would write it (a fresh copy)."""
    return {s.name: copy.deepcopy(s.shown_default) for s in SETTINGS}


def _unknown(name: str) -> str:
    near = difflib.get_close_matches(name, list(SETTINGS_BY_NAME), n=1, cutoff=0.6)
    hint = f"did you mean {near[0]!r}?" if near else "expected a setting from the README's tables"
    return f"{name}: unknown setting; {hint}"


def validate(data: Mapping[str, Any]) -> Settings:
    """Return typed settings, or raise ``SettingsError`` listing every bad setting.

    ``data`` holds settings only (the inventory keeps pyinfra's own keys apart); what it
    leaves out takes its declared default.
    """
    errors = [f"{name}: {why}" for name, why in REMOVED_SETTINGS.items() if name in data]
    errors += [_unknown(k) for k in data if k not in SETTINGS_BY_NAME and k not in REMOVED_SETTINGS]
    values = raw_defaults()
    values.update((k, v) for k, v in data.items() if k in SETTINGS_BY_NAME)
    for s in SETTINGS:
        if not s.info.check(values[s.name]):
            errors.append(
                f"{s.name}: got {describe(values[s.name], s.info.secret)}; expected {s.info.form}"
            )
    problems, services = service_errors(values)
    errors += problems
    errors += tailscale_errors(values, services)
    errors += hardening_errors(values, services)
    errors += docker_errors(values)
    if not any(e.startswith(("pve_", "ct_")) for e in errors):
        errors += proxmox_errors(values)
    if errors:
        raise SettingsError(errors)
    values["services"] = services
    return Settings(**values)
