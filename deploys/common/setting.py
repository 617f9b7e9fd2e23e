"""How a setting is declared: one place for its default, form, meaning, check and secret flag.

Each concern declares its settings as the fields of a frozen dataclass (its *slice*, e.g.
``deploys/tailscale/settings.py``)::

    tailscale_enabled: bool = setting(True, form="True or False", doc="…", check=is_bool)

``deploys/settings.py`` composes the slices into the typed ``Settings`` and validates raw
values against the declarations; ``deploys/docs.py`` renders the README's tables from them.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .checks import Check

_KEY = "egograph-setting"


@dataclass(frozen=True)
class SettingInfo:
    """What a field's declaration says besides its default."""

    form: str
    """The expected form, in words: every error names it."""
    doc: str
    check: Check
    secret: bool = False
    """Its value is never shown, not even in an error."""
    raw_default: Any = None
    """The default as a user writes it, where the field holds a parsed form (services)."""


def setting(
    default: Any,
    *,
    form: str,
    doc: str,
    check: Check,
    secret: bool = False,
    raw_default: Any = None,
) -> Any:
    """A dataclass field declaring one setting (mutable defaults are copied per instance)."""
    info = SettingInfo(form, doc, check, secret, raw_default)
    metadata = {_KEY: info}
    if isinstance(default, list | dict | set):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Declared:
    """One setting as the registry sees it."""

    name: str
    concern: str
    default: Any
    info: SettingInfo

    @property
    def shown_default(self) -> Any:
        """The default as the README shows it."""
        return self.default if self.info.raw_default is None else self.info.raw_default


def declared(slice_cls: type, concern: str) -> Iterator[Declared]:
    """The settings a slice declares, in their order."""
    for f in dataclasses.fields(slice_cls):
        info = f.metadata.get(_KEY)
        if info is None:
            continue
        factory = f.default_factory
        default = factory() if callable(factory) else f.default
        yield Declared(f.name, concern, default, info)


class SettingsError(Exception):
    """Raised with every bad setting; ``str()`` lists one per line."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def describe(value: Any, secret: bool) -> str:
    """A value for an error message: ``<hidden>`` for a secret, else a short repr."""
    if secret:
        return "<hidden>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
