"""What the fixture's health endpoints report besides `status`, for the deploy's tests.
Every value comes from what a stock app sees: DuckDB's defaults, the process itself, the
data directory next to the checkout. (Not in upstream: the fixture's own probes.)"""

import os
import pwd
import sqlite3
from pathlib import Path

import duckdb

_httpfs_loaded = False
_written: set[Path] = set()


def httpfs() -> tuple[bool, str | None]:
    """Load httpfs as upstream's DuckDB connection does: LOAD, else INSTALL + LOAD. DuckDB
    looks in its default directory, ~/.duckdb/extensions/v<version>/<platform> of the
    process's HOME. Once loaded, an extension stays loaded in the process: later health
    checks cost nothing."""
    global _httpfs_loaded
    if _httpfs_loaded:
        return True, None
    con = duckdb.connect(":memory:")
    try:
        try:
            con.execute("LOAD httpfs")
        except (duckdb.CatalogException, duckdb.IOException):
            con.execute("INSTALL httpfs")
            con.execute("LOAD httpfs")
    except duckdb.Error as exc:
        return False, str(exc)
    finally:
        con.close()
    _httpfs_loaded = True
    return True, None


def writable(db_file: Path) -> bool:
    """Whether the app can keep a SQLite file where it wants it (upstream: chat.sqlite,
    state.sqlite3), creating its directory as it would."""
    if db_file in _written:
        return True
    try:
        db_file.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(db_file) as db:
            db.execute("create table if not exists probe (ok integer)")
    except (OSError, sqlite3.Error):
        return False
    _written.add(db_file)
    return True


def report(release: str, db_file: Path) -> dict[str, object]:
    loaded, error = httpfs()
    return {
        "status": "ok",
        "release": release,
        # Which process answers: the tests match it with the unit's MainPID.
        "pid": os.getpid(),
        "httpfs": loaded,
        "httpfs_error": error,
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "home": os.environ.get("HOME"),
        "data_dir": str(db_file.parent),
        "data_dir_writable": writable(db_file),
    }
