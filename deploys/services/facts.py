"""Facts about the app's systemd services."""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand

from ..common.facts import as_list
from ..common.stamps import RELEASE_MARKER, RELEASES, STARTED_SUFFIX
from .history import parse_history


class ServiceStates(FactBase[dict[str, Any]]):
    """
    For each unit: systemd's view of it, the digest of its unit file, the stamp the deploy
    wrote when it last (re)started it healthy, and (given its health URL) whether it answers
    200 now; plus the checked-out commit, the marker of the last rolled-back release and
    the release history (``deploys.services.history``, oldest first).

    .. code:: python

        {
            "head": "5d1c…",
            "rolled_back": None,  # or {"failed_commit": "…", "failed_service": "…",
                                  #     "restored_commit": "…", "at": "2026-…Z"}
            "releases": [{"commit": "9e0b…", "at": "2026-…Z"}, {"commit": "5d1c…", ...}],
            "units": {
                "egograph-backend": {
                    "LoadState": "loaded", "ActiveState": "active",
                    "UnitFileState": "enabled", "NeedDaemonReload": "no",
                    "file_sha256": "9f2c…",
                    "stamp": {"unit": "9f2c…", "env": "41d0…", "commit": "5d1c…"},
                    "healthy": True,           # None when no health URL was given
                    "env_sha256": "41d0…",    # given env_files; None when missing
                },
            },
        }
    """

    def command(
        self,
        units: list[str],
        repo_path: str,
        stamp_dir: str,
        health_urls: list[str] | None = None,
        env_files: list[str] | None = None,
    ) -> StringCommand:
        units = as_list(units)
        urls = as_list(health_urls) if health_urls else ["-"] * len(units)
        envs = as_list(env_files) if env_files else ["-"] * len(units)
        specs = [QuoteString(" ".join(t)) for t in zip(units, urls, envs, strict=True)]
        return StringCommand(
            "echo head $(git -C",
            QuoteString(repo_path),
            "rev-parse HEAD 2>/dev/null);",
            'echo "rollback $(cat',
            StringCommand(QuoteString(stamp_dir), f"/{RELEASE_MARKER}", _separator=""),
            '2>/dev/null)";',
            'echo "releases $(tr -d "\\n" <',
            StringCommand(QuoteString(stamp_dir), f"/{RELEASES}", _separator=""),
            '2>/dev/null)";',
            "for spec in",
            *specs,
            "; do set -- $spec;",
            'echo "unit $1";',
            "systemctl show -p LoadState -p ActiveState -p UnitFileState -p NeedDaemonReload",
            '-- "$1.service" 2>/dev/null | sed "s/^/prop /";',
            'echo "file $(sha256sum "/etc/systemd/system/$1.service" 2>/dev/null | cut -c1-64)";',
            'echo "stamp $(cat',
            StringCommand(QuoteString(stamp_dir), f'"/$1{STARTED_SUFFIX}"', _separator=""),
            '2>/dev/null)";',
            'if [ "$3" != - ]; then echo "env $(sha256sum "$3" 2>/dev/null | cut -c1-64)"; fi;',
            'if [ "$2" != - ]; then',
            'if curl -fsS -o /dev/null --max-time 3 "$2" 2>/dev/null;',
            "then echo health ok; else echo health fail; fi; fi; done",
        )

    @staticmethod
    def default() -> dict[str, Any]:
        return {"head": None, "rolled_back": None, "releases": [], "units": {}}

    def process(self, output: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = {"head": None, "rolled_back": None, "releases": [], "units": {}}
        unit: dict[str, Any] = {}
        for line in output:
            key, _, rest = line.partition(" ")
            rest = rest.strip()
            if key == "head":
                result["head"] = rest or None
            elif key == "unit":
                unit = result["units"].setdefault(
                    rest, {"file_sha256": None, "stamp": None, "healthy": None}
                )
            elif key == "prop":
                prop, _, value = rest.partition("=")
                unit[prop] = value
            elif key == "file":
                unit["file_sha256"] = rest or None
            elif key == "rollback":
                try:
                    result["rolled_back"] = json.loads(rest) if rest else None
                except json.JSONDecodeError:
                    result["rolled_back"] = None
            elif key == "releases":
                result["releases"] = parse_history(rest)
            elif key == "env":
                unit["env_sha256"] = rest or None
            elif key == "health":
                unit["healthy"] = rest == "ok"
            elif key == "stamp" and rest:
                try:
                    unit["stamp"] = json.loads(rest)
                except json.JSONDecodeError:
                    unit["stamp"] = None
        return result


class SystemUser(FactBase[dict[str, Any]]):
    """
    Whether a user and a group exist, with the user's primary group, HOME and shell, and
    the owner and mode of some directories (``None``: missing).

    .. code:: python

        {"user": True, "group": True, "primary_group": "egograph",
         "home": "/var/lib/egograph", "shell": "/usr/sbin/nologin",
         "dirs": {"/var/lib/egograph": {"owner": "egograph:egograph", "mode": 0o750},
                  "/opt/egograph/data": None}}
    """

    def command(self, user: str, group: str, dirs: str | list[str] = "") -> StringCommand:
        return StringCommand(
            "echo user $(getent passwd",
            QuoteString(user),
            "| cut -d: -f4,6,7);",
            "echo group $(getent group",
            QuoteString(group),
            "| cut -d: -f3);",
            "echo primary $(id -gn",
            QuoteString(user),
            "2>/dev/null);",
            "for d in",
            *[QuoteString(d) for d in as_list(dirs)],
            """; do echo "dir $d $(stat -c '%U:%G %a' "$d" 2>/dev/null)"; done""",
        )

    @staticmethod
    def default() -> dict[str, Any]:
        return {
            "user": False,
            "group": False,
            "primary_group": None,
            "home": None,
            "shell": None,
            "dirs": {},
        }

    def process(self, output: list[str]) -> dict[str, Any]:
        result = self.default()
        for line in output:
            key, _, rest = line.partition(" ")
            rest = rest.strip()
            if key == "user" and rest:
                _gid, home, shell = [*rest.split(":", 2), "", ""][:3]
                result.update(user=True, home=home or None, shell=shell or None)
            elif key == "group" and rest:
                result["group"] = True
            elif key == "primary" and rest:
                result["primary_group"] = rest
            elif key == "dir":
                path, _, stat = rest.partition(" ")
                owner, _, mode = stat.partition(" ")
                result["dirs"][path] = {"owner": owner, "mode": int(mode, 8)} if mode else None
        return result
