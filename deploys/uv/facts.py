"""Facts about uv on the target."""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand
from pyinfra.api.exceptions import FactProcessError


class UvInstall(FactBase[dict[str, Any]]):
    """
    The installed uv version at ``path``, the machine type, and whether the profile line
    is present — everything the uv deploy needs, in one round trip.

    .. code:: python

        {"version": "0.13.9", "machine": "x86_64", "profile_line": True}
    """

    def command(self, path: str, profile: str, line: str) -> StringCommand:
        p, f, ln = QuoteString(path), QuoteString(profile), QuoteString(line)
        return StringCommand(
            "echo machine $(uname -m);",
            "if [ -x",
            p,
            "]; then echo version $(",
            p,
            "--version 2>/dev/null); fi;",
            "if grep -qxF --",
            ln,
            f,
            "2>/dev/null; then echo profile yes; fi",
        )

    @staticmethod
    def default() -> dict[str, Any]:
        return {"version": None, "machine": None, "profile_line": False}

    def process(self, output: list[str]) -> dict[str, Any]:
        result = self.default()
        for line in output:
            key, _, rest = line.partition(" ")
            if key == "machine":
                result["machine"] = rest.strip()
            elif key == "version":
                # "uv 0.13.9 (x86_64-unknown-linux-gnu)" or "uv 0.13.9"
                parts = rest.split()
                result["version"] = parts[1] if len(parts) >= 2 and parts[0] == "uv" else None
            elif key == "profile":
                result["profile_line"] = True
        return result


class UvSyncState(FactBase[dict[str, Any]]):
    """
    What the workspace's environment was last synced from, against what is checked out.

    .. code:: python

        {
            "head": "5d1c…",      # checked-out commit, None without a checkout
            "lock": "a3f0…",      # sha256 of uv.lock, None without one
            "stamp": {"commit": "5d1c…", "lock": "a3f0…", "env": "77aa…"},  # None: never synced
        }
    """

    def command(self, repo_path: str, stamp: str) -> StringCommand:
        r = QuoteString(repo_path)
        return StringCommand(
            "echo head $(git -C",
            r,
            "rev-parse HEAD 2>/dev/null);",
            "echo lock $(sha256sum",
            QuoteString(f"{repo_path}/uv.lock"),
            "2>/dev/null | cut -c1-64);",
            "echo stamp $(cat",
            QuoteString(stamp),
            "2>/dev/null)",
        )

    @staticmethod
    def default() -> dict[str, Any]:
        return {"head": None, "lock": None, "stamp": None}

    def process(self, output: list[str]) -> dict[str, Any]:
        result = self.default()
        for line in output:
            key, _, rest = line.partition(" ")
            rest = rest.strip()
            if key in ("head", "lock"):
                result[key] = rest or None
            elif key == "stamp" and rest:
                try:
                    result["stamp"] = json.loads(rest)
                except json.JSONDecodeError as exc:
                    raise FactProcessError(f"unreadable uv sync stamp: {exc}") from exc
        return result
