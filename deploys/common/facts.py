"""Facts shared by the concerns."""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand
from pyinfra.api.exceptions import FactProcessError


def as_list(value: str | list[str]) -> list[str]:
    """A fact's list argument; from the command line (``fact X paths=a,b``) it is a string."""
    return [v for v in value.split(",") if v] if isinstance(value, str) else list(value)


class FileStates(FactBase[dict[str, dict[str, Any] | None]]):
    """
    Content digest, mode and owner of several files, in one round trip.

    .. code:: python

        {
            "/etc/systemd/system/egograph-backend.service": {
                "sha256": "9f2c…", "mode": 0o644, "user": "root", "group": "root",
            },
            "/opt/egograph/repo/egograph/backend/.env": None,   # missing
        }
    """

    def command(self, paths: list[str]) -> StringCommand:
        bits: list[Any] = ["for p in"]
        bits += [QuoteString(p) for p in as_list(paths)]
        bits.append(
            '; do if [ -f "$p" ]; then '
            'printf \'%s\\t%s\\t%s\\n\' "$p" "$(stat -c \'%a %U %G\' -- "$p")" '
            '"$(sha256sum < "$p" | cut -c1-64)"; '
            "else printf '%s\\t-\\n' \"$p\"; fi; done"
        )
        return StringCommand(*bits)

    @staticmethod
    def default() -> dict[str, dict[str, Any] | None]:
        return {}

    def process(self, output: list[str]) -> dict[str, dict[str, Any] | None]:
        states: dict[str, dict[str, Any] | None] = {}
        for line in output:
            parts = line.split("\t")
            if len(parts) == 2 and parts[1] == "-":
                states[parts[0]] = None
            elif len(parts) == 3:
                mode, user, group = parts[1].split(" ")
                states[parts[0]] = {
                    "sha256": parts[2],
                    "mode": int(mode, 8),
                    "user": user,
                    "group": group,
                }
            else:
                raise FactProcessError(f"unexpected file state line: {line!r}")
        return states


class JsonFile(FactBase[Any]):
    """
    The parsed JSON content of a file, or ``None`` when it is missing or not JSON.
    Used for the deploy's own stamps (what was last synced, what a unit last started with).
    """

    def command(self, path: str) -> StringCommand:
        return StringCommand("cat", QuoteString(path), "2>/dev/null", "||", "true")

    @staticmethod
    def default() -> None:
        return None

    def process(self, output: list[str]) -> Any:
        try:
            return json.loads("\n".join(output)) if output else None
        except json.JSONDecodeError:
            return None
