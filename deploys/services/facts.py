"""Facts about the app's systemd services."""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand


class ServiceStates(FactBase[dict[str, Any]]):
    """
    For each unit: systemd's view of it, the digest of its unit file, and the stamp the
    deploy wrote when it last (re)started it healthy; plus the checked-out commit.

    .. code:: python

        {
            "head": "5d1c…",
            "units": {
                "egograph-backend": {
                    "LoadState": "loaded", "ActiveState": "active",
                    "UnitFileState": "enabled", "NeedDaemonReload": "no",
                    "file_sha256": "9f2c…",
                    "stamp": {"unit": "9f2c…", "env": "41d0…", "commit": "5d1c…"},
                },
            },
        }
    """

    def command(self, units: list[str], repo_path: str, stamp_dir: str) -> StringCommand:
        bits: list[Any] = [
            "echo head $(git -C",
            QuoteString(repo_path),
            "rev-parse HEAD 2>/dev/null); for u in",
        ]
        bits += [QuoteString(u) for u in units]
        bits += [
            '; do echo "unit $u";',
            "systemctl show -p LoadState -p ActiveState -p UnitFileState -p NeedDaemonReload",
            '-- "$u.service" 2>/dev/null | sed "s/^/prop /";',
            'echo "file $(sha256sum "/etc/systemd/system/$u.service" 2>/dev/null | cut -c1-64)";',
            'echo "stamp $(cat',
            f'"{stamp_dir}/$u.started.json"',
            '2>/dev/null)"; done',
        ]
        return StringCommand(*bits)

    @staticmethod
    def default() -> dict[str, Any]:
        return {"head": None, "units": {}}

    def process(self, output: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = {"head": None, "units": {}}
        unit: dict[str, Any] = {}
        for line in output:
            key, _, rest = line.partition(" ")
            rest = rest.strip()
            if key == "head":
                result["head"] = rest or None
            elif key == "unit":
                unit = result["units"].setdefault(rest, {"file_sha256": None, "stamp": None})
            elif key == "prop":
                prop, _, value = rest.partition("=")
                unit[prop] = value
            elif key == "file":
                unit["file_sha256"] = rest or None
            elif key == "stamp" and rest:
                try:
                    unit["stamp"] = json.loads(rest)
                except json.JSONDecodeError:
                    unit["stamp"] = None
        return result
