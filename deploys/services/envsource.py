"""A service's env file text from its controller-side source (a 0600 file, or environment
variables), read once while the settings are validated."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..common.checks import ENV_KEY
from ..common.secrets import Secret, open_to_others, parse_env_text


def environ_mapping(source: Mapping[str, Any]) -> dict[str, str]:
    """An ``{'environ': ...}`` env source as env-file key -> controller variable (a list
    names variables that keep their names)."""
    names = source["environ"]
    return {n: n for n in names} if isinstance(names, list) else dict(names)


def read_env_source(source: Mapping[str, Any]) -> tuple[list[str], Secret | None]:
    """Read a service's env file text from its controller-side source, once: ``(problems,
    None)`` when the source is missing, open to others, empty or not KEY=VALUE, else
    ``([], text)``."""
    if "file" in source:
        path = source["file"]
        if not isinstance(path, str) or not path:
            return ["'file' must be a path on the controller"], None
        p = Path(path).expanduser()
        if not p.is_file():
            return [
                f"file {path!r} does not exist on the controller; expected a KEY=VALUE file"
            ], None
        exposed = open_to_others(path)
        if exposed:
            return [exposed], None
        try:
            text = p.read_text(encoding="utf-8")
            parse_env_text(text)
        except (OSError, ValueError) as exc:
            return [f"file {path!r}: {exc}"], None
        return [], Secret(text if text.endswith("\n") else text + "\n")
    names = source.get("environ")
    if isinstance(names, list):
        mapping = {n: n for n in names} if all(isinstance(n, str) for n in names) else None
    elif isinstance(names, dict):
        mapping = names
    else:
        mapping = None
    if not mapping or not all(
        isinstance(k, str) and ENV_KEY.match(k) and isinstance(v, str) and ENV_KEY.match(v)
        for k, v in mapping.items()
    ):
        return [
            "'environ' must be a non-empty list of variable names or a mapping "
            "KEY -> CONTROLLER_VARIABLE"
        ], None
    missing = [v for v in mapping.values() if not os.environ.get(v)]
    if missing:
        return [f"controller environment variable(s) {', '.join(missing)} unset or empty"], None
    return [], Secret(
        "".join(f"{key}={_systemd_quote(os.environ[var])}\n" for key, var in mapping.items())
    )


def _systemd_quote(value: str) -> str:
    # systemd's EnvironmentFile= strips unquoted surrounding whitespace and honours quotes.
    if re.fullmatch(r"[A-Za-z0-9_./:@%+,=-]*", value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
