"""DuckDB extensions (runbook §4: `INSTALL httpfs; LOAD httpfs;` with the app's env)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyinfra.api import deploy

from .operations import duckdb_extensions

if TYPE_CHECKING:
    from ..settings import Settings


@deploy("DuckDB")
def install_extensions(settings: Settings) -> None:
    if not settings.duckdb_extensions:
        return
    users = [user for user, _group in settings.service_accounts]
    duckdb_extensions(
        name=f"DuckDB extensions {', '.join(settings.duckdb_extensions)} for {', '.join(users)}",
        python=settings.venv_python,
        extensions=settings.duckdb_extensions,
        users=users,
        repository=settings.duckdb_extension_repository,
    )
