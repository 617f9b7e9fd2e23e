"""Operations that install DuckDB extensions with the app's own environment."""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra import host
from pyinfra.api import StringCommand

from ..common.commands import chain
from ..common.report import change_reason
from ..common.snapshot import FactRead, fact_read, operation
from ..common.stamps import STATE_DIR
from .facts import BUILTIN_PREFIX, HOME_OF, DuckdbExtensions

# One Python per user for both: ask duckdb_extensions() about the extensions the fact found
# no file for, install (and load) those it lacks, and remember those it has built in (no
# file to find next time; see DuckdbExtensions). It runs with the user's HOME, so DuckDB
# installs into that user's default directory, ~/.duckdb/extensions.
_INSTALL = """
import os, sys
import duckdb
repository, builtin_file, names = sys.argv[1], sys.argv[2], sys.argv[3:]
cfg = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
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


def _users(users: list[str] | None) -> list[str]:
    return list(users) if users else ["root"]


def _extension_read(
    python: str, extensions: list[str], users: list[str] | None = None, **_: Any
) -> FactRead[dict[str, Any]]:
    return fact_read(DuckdbExtensions, python=python, users=_users(users), expect=extensions)


BUILTIN_FILE = f"{STATE_DIR}/{BUILTIN_PREFIX}{{version}}-{{platform}}"


def install_for(user: str, python: str, repository: str, names: list[str]) -> StringCommand:
    """Shell: install ``names`` for ``user`` (with its HOME, as root), then hand the files
    DuckDB made in that HOME to the user."""
    q = shlex.quote
    args = " ".join(q(a) for a in [repository, BUILTIN_FILE, *names])
    return StringCommand(f"""\
u={q(user)}; {HOME_OF}
if [ -z "$h" ] || [ ! -d "$h" ]; then
  echo "DuckDB extensions for $u: its HOME (${{h:-none}}) is not a directory;" \\
    "DuckDB keeps them in ~/.duckdb" >&2
  exit 1
fi
HOME="$h" {q(python)} -c {q(_INSTALL)} {args} && chown -R "$u:" "$h/.duckdb\"""")


@operation(read=_extension_read)
def duckdb_extensions(
    current: dict[str, Any],
    python: str,
    extensions: list[str],
    *,
    users: list[str] | None = None,
    repository: str = "",
) -> Any:
    """
    Install DuckDB extensions (``INSTALL x; LOAD x``) with the app's interpreter, for each
    user a service runs as, into that user's HOME (``~/.duckdb/extensions``: the app sets
    no extension directory, so that is where its DuckDB looks); only those
    ``duckdb_extensions()`` does not already list as installed. A host in sync is checked
    without starting Python (the extension files, and the ones this DuckDB build has built
    in, see ``DuckdbExtensions``); an extension found nowhere is looked up and, if missing,
    installed by one Python run per user that lacks it.

    + python: the app environment's interpreter (``<repo>/.venv/bin/python``)
    + extensions: names, e.g. ``["httpfs"]``
    + users: the services' users (default root, whose HOME is /root); each must have a
      HOME directory (a hardened user's is made by ``system_user``)
    + repository: '' = DuckDB's core repository, else a mirror URL

    **Example:**

    .. code:: python

        duckdb_extensions(name="DuckDB httpfs", python="/opt/egograph/repo/.venv/bin/python",
                          extensions=["httpfs"], users=["egograph"])
    """
    users = _users(users)
    found = current.get("users", {})
    missing = {
        u: [
            e
            for e in extensions
            if not found.get(u, {}).get("extensions", {}).get(e, {}).get("installed")
        ]
        for u in users
    }
    missing = {u: names for u, names in missing.items() if names}
    version = current.get("duckdb")
    if not missing:
        host.noop(f"DuckDB {version}: {', '.join(extensions)} installed for {', '.join(users)}")
        return
    for user, names in missing.items():
        if not current:
            change_reason(f"no environment yet: {', '.join(names)} to install for {user}")
            continue
        home = found.get(user, {}).get("home") or "(no HOME yet)"
        change_reason(
            f"DuckDB {version}: no {', '.join(names)} in {user}'s ~/.duckdb/extensions "
            f"({home}) (installed unless built in)"
        )
    yield chain([install_for(u, python, repository, names) for u, names in missing.items()])
