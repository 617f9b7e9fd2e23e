"""Operations that install DuckDB extensions with the app's own environment."""

from __future__ import annotations

from typing import Any

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand

from ..common.commands import chain
from ..common.report import change_reason
from ..common.snapshot import FactRead, fact_read, operation, read_fact
from .facts import DuckdbExtensions

_INSTALL = """
import sys
import duckdb
directory, repository, names = sys.argv[1], sys.argv[2], sys.argv[3:]
cfg = {"autoinstall_known_extensions": False}
if directory:
    cfg["extension_directory"] = directory
con = duckdb.connect(config=cfg)
for name in names:
    con.execute(f"INSTALL {name}" + (" FROM " + repr(repository) if repository else ""))
    con.execute(f"LOAD {name}")
    print(f"installed and loaded {name}")
"""


def _extension_reads(
    python: str, extensions: list[str], directory: str, **_: Any
) -> list[FactRead[Any]]:
    return [fact_read(DuckdbExtensions, python=python, directory=directory, expect=extensions)]


@operation(reads=_extension_reads)
def duckdb_extensions(
    python: str, extensions: list[str], *, directory: str = "", repository: str = ""
) -> Any:
    """
    Install DuckDB extensions (``INSTALL x; LOAD x``) with the app's interpreter, only those
    ``duckdb_extensions()`` does not already list as installed.

    + python: the app environment's interpreter (``<repo>/.venv/bin/python``)
    + extensions: names, e.g. ``["httpfs"]``
    + directory: extension directory; '' = DuckDB's default for the user (root)
    + repository: '' = DuckDB's core repository, else a mirror URL

    **Example:**

    .. code:: python

        duckdb_extensions(name="DuckDB httpfs", python="/opt/egograph/repo/.venv/bin/python",
                          extensions=["httpfs"])
    """
    current = read_fact(DuckdbExtensions, python=python, directory=directory, expect=extensions)
    listed = current.get("extensions", {})
    missing = [e for e in extensions if not listed.get(e, {}).get("installed")]
    if not missing:
        host.noop(f"DuckDB {current.get('duckdb')}: {', '.join(extensions)} installed")
        return
    change_reason(f"DuckDB extensions not installed: {', '.join(missing)}")
    commands = []
    if directory:
        # The service may run as another user: the directory must be readable by it.
        commands.append(StringCommand("install", "-d", "-m", "755", QuoteString(directory)))
    commands.append(
        StringCommand(
            QuoteString(python),
            "-c",
            QuoteString(_INSTALL),
            QuoteString(directory),
            QuoteString(repository),
            *[QuoteString(e) for e in missing],
        )
    )
    yield chain(commands)
