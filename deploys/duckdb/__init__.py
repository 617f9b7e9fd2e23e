"""DuckDB extensions (runbook §4: `INSTALL httpfs; LOAD httpfs;` with the app's env)."""

from __future__ import annotations

from pyinfra.api import deploy

from ..settings import Settings
from .operations import duckdb_extensions


@deploy("DuckDB")
def install_extensions(settings: Settings) -> None:
    if not settings.duckdb_extensions:
        return
    duckdb_extensions(
        name=f"DuckDB extensions {', '.join(settings.duckdb_extensions)}",
        python=settings.venv_python,
        extensions=settings.duckdb_extensions,
        directory=settings.duckdb_extension_directory,
        repository=settings.duckdb_extension_repository,
    )
