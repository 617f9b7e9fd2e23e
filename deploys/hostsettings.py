"""The validated settings of the host pyinfra is working on."""

from __future__ import annotations

from typing import Any

from pyinfra import host

from .settings import SETTINGS, Settings, validate

_MISSING = object()


def data_of(host_data: Any) -> dict[str, Any]:
    """Every known setting present in a pyinfra ``HostData`` (absent ones left out)."""
    values: dict[str, Any] = {}
    for s in SETTINGS:
        value = host_data.get(s.name, _MISSING)
        if value is not _MISSING:
            values[s.name] = value
    return values


def current() -> Settings:
    """Validate and return the current host's settings (raises ``SettingsError``)."""
    return validate(data_of(host.data))
