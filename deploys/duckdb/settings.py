"""DuckDB's settings (runbook §4)."""

from __future__ import annotations

from dataclasses import dataclass

from ..common.checks import (
    EXTENSION,
    list_of,
    matches,
    optional_url,
)
from ..common.setting import setting


@dataclass(frozen=True)
class DuckdbSettings:
    """DuckDB extensions (runbook §4)."""

    duckdb_extensions: list[str] = setting(
        ["httpfs"],
        form="a list of extension names, e.g. ['httpfs']",
        doc="DuckDB extensions installed with the app's own environment, into DuckDB's default "
        "directory of each service user (~/.duckdb/extensions: the app sets no other)",
        check=list_of(matches(EXTENSION)),
    )
    duckdb_extension_repository: str = setting(
        "",
        form="'' or an http(s) URL",
        doc="'' = DuckDB's core repository; else a mirror laid out as "
        "<url>/v<version>/<platform>/<name>.duckdb_extension.gz",
        check=optional_url,
    )


REMOVED: dict[str, str] = {
    "duckdb_extension_directory": (
        "removed: the app sets no extension_directory, so DuckDB only looks in its default, "
        "~/.duckdb/extensions of the user running it; the deploy now installs "
        "duckdb_extensions there, for each service user (root's /root, or a hardened "
        "user's HOME /var/lib/<user>). Delete this setting"
    ),
}
"""Settings of this concern that existed once, with what replaced them."""
