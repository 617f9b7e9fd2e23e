"""Operations that install DuckDB extensions with the app's own environment."""

from __future__ import annotations

from typing import Any

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand

from ..common.commands import chain
from ..common.operations import STATE_DIR
from ..common.report import change_reason
from ..common.snapshot import FactRead, fact_read, operation, read_fact
from .facts import BUILTIN_PREFIX, DuckdbExtensions

# One Python for both: ask duckdb_extensions() about the extensions the fact found no file
# for, install (and load) those it lacks, and remember those it has built in (no file to
# find next time; see DuckdbExtensions).
_INSTALL = """
import os, sys
import duckdb
directory, repository, builtin_file, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
cfg = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
if directory:
    cfg["extension_directory"] = directory
con = duckdb.connect(config=cfg)
listed = dict(con.execute(
    "select extension_name, installed and install_path = '(BUILT-IN)' "
    "from duckdb_extensions() where installed").fetchall())
builtin = sorted(n for n in names if listed.get(n))
for name in names:
    if name in listed:
        print(f"{name}: installed" + (" (built in)" if listed[name] else ""))
        continue
    con.execute(f"INSTALL {name}" + (" FROM " + repr(repository) if repository else ""))
    con.execute(f"LOAD {name}")
    print(f"installed and loaded {name}")
if builtin:
    os.makedirs(os.path.dirname(builtin_file), mode=0o700, exist_ok=True)
    version, platform = duckdb.__version__, con.execute("pragma platform").fetchone()[0]
    path = builtin_file.format(version=version, platform=platform)
    try:
        with open(path) as f:
            builtin = sorted(set(builtin) | set(f.read().split()))
    except FileNotFoundError:
        pass
    with open(path + ".tmp", "w") as f:
        f.write("".join(n + "\\n" for n in builtin))
    os.replace(path + ".tmp", path)
"""


def _extension_reads(
    python: str, extensions: list[str], directory: str, **_: Any
) -> list[FactRead[Any]]:
    return [fact_read(DuckdbExtensions, python=python, directory=directory, expect=extensions)]


BUILTIN_FILE = f"{STATE_DIR}/{BUILTIN_PREFIX}{{version}}-{{platform}}"


@operation(reads=_extension_reads)
def duckdb_extensions(
    python: str, extensions: list[str], *, directory: str = "", repository: str = ""
) -> Any:
    """
    Install DuckDB extensions (``INSTALL x; LOAD x``) with the app's interpreter, only those
    ``duckdb_extensions()`` does not already list as installed. A host in sync is checked
    without starting Python (the extension files, and the ones this DuckDB build has built
    in, see ``DuckdbExtensions``); an extension found nowhere is looked up and, if missing,
    installed by one Python run.

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
    if not current:
        change_reason(f"no environment yet: {', '.join(missing)} to install")
    else:
        change_reason(
            f"DuckDB {current.get('duckdb')}: no {', '.join(missing)} in its extension "
            "directory (installed unless built in)"
        )
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
            QuoteString(BUILTIN_FILE),
            *[QuoteString(e) for e in missing],
        )
    )
    yield chain(commands)
