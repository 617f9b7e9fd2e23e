"""Fixture app: /health says whether DuckDB's httpfs extension loads, which user runs the
app, and whether it can write its data directory."""

import os
import pwd
from pathlib import Path

import duckdb
from fastapi import FastAPI

from backend import RELEASE

app = FastAPI()


_HTTPFS_LOADED = False


def _httpfs() -> tuple[bool, str | None]:
    # Once loaded, an extension stays loaded for the process: later checks are free, as
    # a health endpoint polled by every deploy and drift check should be.
    global _HTTPFS_LOADED
    if _HTTPFS_LOADED:
        return True, None
    config = {"autoinstall_known_extensions": False}
    directory = os.environ.get("DUCKDB_EXTENSION_DIRECTORY")
    if directory:
        config["extension_directory"] = directory
    try:
        con = duckdb.connect(config=config)
        con.execute("LOAD httpfs")
        _HTTPFS_LOADED = True
        return True, None
    except duckdb.Error as exc:
        return False, str(exc)


_DATA_DIR_WRITTEN = False


def _data_dir_writable() -> bool | None:
    global _DATA_DIR_WRITTEN
    directory = os.environ.get("EGOGRAPH_DATA_DIR")
    if not directory:
        return None
    if _DATA_DIR_WRITTEN:
        return True
    try:
        con = duckdb.connect(str(Path(directory) / "health.duckdb"))
        con.execute("create or replace table probe as select 1 as ok")
        con.close()
        _DATA_DIR_WRITTEN = True
        return True
    except (OSError, duckdb.Error):
        return False


@app.get("/health")
def health() -> dict:
    loaded, error = _httpfs()
    return {
        "status": "ok",
        "release": RELEASE,
        "httpfs": loaded,
        "httpfs_error": error,
        "greeting": os.environ.get("EGOGRAPH_GREETING"),
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "data_dir_writable": _data_dir_writable(),
    }
