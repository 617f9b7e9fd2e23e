"""Facts about DuckDB extensions, read with the app's own Python environment."""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand
from pyinfra.api.exceptions import FactProcessError

# Runs with the venv's python. Autoinstall is off so that reading the fact never installs.
_READ = """
import json, sys
import duckdb
cfg = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
if sys.argv[1]:
    cfg["extension_directory"] = sys.argv[1]
con = duckdb.connect(config=cfg)
rows = con.execute(
    "select extension_name, installed, extension_version, install_path, installed_from "
    "from duckdb_extensions()").fetchall()
print(json.dumps({
    "duckdb": duckdb.__version__,
    "platform": con.execute("pragma platform").fetchone()[0],
    "extensions": {r[0]: {"installed": r[1], "version": r[2], "path": r[3], "from": r[4]}
                   for r in rows},
}))
"""


class DuckdbExtensions(FactBase[dict[str, Any]]):
    """
    DuckDB's version, platform and ``duckdb_extensions()`` as the app's environment sees
    them; ``{}`` while that environment does not exist yet.

    .. code:: python

        {
            "duckdb": "1.4.4",
            "platform": "linux_amd64",
            "extensions": {
                "httpfs": {"installed": True, "version": "13f8a81",
                           "path": "/root/.duckdb/extensions/v1.4.4/linux_amd64/httpfs.duckdb_extension",
                           "from": "core"},
            },
        }
    """

    def command(self, python: str, directory: str) -> StringCommand:
        return StringCommand(
            "if [ -x",
            QuoteString(python),
            "]; then",
            QuoteString(python),
            "-c",
            QuoteString(_READ),
            QuoteString(directory),
            "; fi",
        )

    @staticmethod
    def default() -> dict[str, Any]:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        if not output:
            return {}
        try:
            data: dict[str, Any] = json.loads(output[-1])
        except json.JSONDecodeError as exc:
            raise FactProcessError(f"duckdb_extensions(): {exc}: {output[-1]!r}") from exc
        return data
