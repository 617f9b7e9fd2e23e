"""Facts about apt: package states and list freshness, in one round trip."""

from __future__ import annotations

from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand

from ..common.facts import as_list

UPDATE_STAMP = "/var/lib/apt/periodic/update-success-stamp"


class AptState(FactBase[dict[str, Any]]):
    """
    Which of the given packages are installed, and how old the apt lists are.

    .. code:: python

        {
            "lists_age": 5120,          # seconds since the last successful update; None: never
            "installed": {"git": "1:2.47.3-0+deb13u1", "curl": "8.14.1-2"},
        }
    """

    def requires_command(self, packages: list[str]) -> str:
        return "dpkg-query"

    def command(self, packages: list[str]) -> StringCommand:
        names = [QuoteString(p.split("=", 1)[0]) for p in as_list(packages)]
        return StringCommand(
            f"if [ -e {UPDATE_STAMP} ]; then "
            f"echo age $(( $(date +%s) - $(stat -c %Y {UPDATE_STAMP}) )); "
            "else echo age -; fi;",
            "dpkg-query -W -f='pkg ${Package} ${db:Status-Abbrev} ${Version}\\n' --",
            *names,
            "2>/dev/null || true",
        )

    @staticmethod
    def default() -> dict[str, Any]:
        return {"lists_age": None, "installed": {}}

    def process(self, output: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = {"lists_age": None, "installed": {}}
        for line in output:
            parts = line.split()
            if parts[:1] == ["age"] and len(parts) == 2 and parts[1] != "-":
                result["lists_age"] = int(parts[1])
            elif parts[:1] == ["pkg"] and len(parts) >= 4 and parts[2] == "ii":
                result["installed"][parts[1]] = parts[3]
        return result
