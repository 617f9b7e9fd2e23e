"""The validated settings of the host pyinfra is working on."""

from __future__ import annotations

from typing import Any

from pyinfra import host

from .inventory import SETTINGS_KEY
from .settings import REMOVED_SETTINGS, SETTINGS, Settings, validate

_MISSING = object()


def data_of(host_data: Any) -> dict[str, Any]:
    """Every known setting present in a pyinfra ``HostData`` (absent ones left out), and
    any removed one (``validate`` says what replaced it)."""
    values: dict[str, Any] = {}
    for name in [*(s.name for s in SETTINGS), *REMOVED_SETTINGS]:
        value = host_data.get(name, _MISSING)
        if value is not _MISSING:
            values[name] = value
    return values


def settings_of(host_data: Any) -> Settings:
    """The settings the inventory validated for a host (once per host and run); validated
    here only for a host that came from another inventory (raises ``SettingsError``)."""
    settings = host_data.get(SETTINGS_KEY, None)
    if isinstance(settings, Settings):
        return settings
    return validate(data_of(host_data))


def current() -> Settings:
    """The current host's settings."""
    return settings_of(host.data)
