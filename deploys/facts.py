"""Facts about the deployment as a whole, for ad-hoc queries and the drift report.

pyinfra inventory.py fact deploys.facts.Deployment
"""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand

from .common.stamps import STARTED_SUFFIX, STATE_DIR, release_marker
from .duckdb.facts import HOME_OF

_DUCKDB = (
    'import duckdb, json; r = duckdb.execute("select installed from duckdb_extensions() '
    "where extension_name = 'httpfs'\").fetchone(); "
    "print(json.dumps({'duckdb': duckdb.__version__, 'httpfs': bool(r and r[0])}))"
)


class Deployment(FactBase[dict[str, Any]]):
    """
    What is deployed, in one round trip: the checked-out commit and branch, uv's version,
    DuckDB's version and whether httpfs is installed (with the app's Python, as ``user``'s
    DuckDB sees it: a hardened service's user has its own HOME), each unit's state and
    last healthy start, and the marker of the last rolled-back release. Defaults are the
    runbook's paths and user.

    .. code:: python

        {
            "commit": "5d1c0e9…", "branch": "main", "uv": "0.13.9",
            "duckdb": "1.4.3", "httpfs": True,
            "units": {"egograph-backend": {
                "active": "active", "enabled": "enabled",
                "started": {"unit": "9f2c…", "env": "41d0…", "commit": "5d1c0e9…"},
            }},
            # or {"failed_commit": …, "failed_service": …, "restored_commit": …, "at": …}
            "rolled_back": None,
        }
    """

    def command(
        self,
        repo_path: str = "/opt/egograph/repo",
        uv_path: str = "/root/.local/bin/uv",
        units: str = "egograph-backend",
        user: str = "root",
    ) -> StringCommand:
        r = QuoteString(repo_path)
        names = [QuoteString(u) for u in units.split(",") if u]
        return StringCommand(
            "echo commit $(git -C",
            r,
            "rev-parse HEAD 2>/dev/null);",
            "echo branch $(git -C",
            r,
            "symbolic-ref --short -q HEAD 2>/dev/null);",
            "echo uv $(",
            QuoteString(uv_path),
            "--version 2>/dev/null | cut -d' ' -f2);",
            "echo duckdb $(",
            StringCommand("u=", QuoteString(user), _separator=""),
            f'; {HOME_OF}; HOME="$h"',
            QuoteString(f"{repo_path}/.venv/bin/python"),
            "-c",
            QuoteString(_DUCKDB),
            "2>/dev/null);",
            f'echo "rolledback $(cat {release_marker()} 2>/dev/null)";',
            "for u in",
            *names,
            "; do",
            'echo "unit $u $(systemctl is-active "$u" 2>/dev/null)',
            '$(systemctl is-enabled "$u" 2>/dev/null)";',
            'echo "started $u $(cat',
            f'{STATE_DIR}/"$u"{STARTED_SUFFIX}',
            '2>/dev/null)";',
            "done",
        )

    @staticmethod
    def default() -> dict[str, Any]:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = {
            "commit": None,
            "branch": None,
            "uv": None,
            "duckdb": None,
            "httpfs": None,
            "units": {},
            "rolled_back": None,
        }
        for line in output:
            key, _, rest = line.partition(" ")
            rest = rest.strip()
            if key in ("commit", "branch", "uv"):
                result[key] = rest or None
            elif key == "duckdb" and rest:
                result.update(_json(rest) or {})
            elif key == "unit":
                name, _, states = rest.partition(" ")
                active, _, enabled = states.partition(" ")
                unit = result["units"].setdefault(name, {})
                unit.update(active=active or None, enabled=enabled or None)
            elif key == "started":
                name, _, blob = rest.partition(" ")
                result["units"].setdefault(name, {})["started"] = _json(blob)
            elif key == "rolledback":
                result["rolled_back"] = _json(rest)
        return result


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
