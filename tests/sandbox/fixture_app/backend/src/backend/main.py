"""Fixture app: answers /health with whether DuckDB's httpfs extension loads."""

import os

import duckdb
from fastapi import FastAPI

from backend import RELEASE

app = FastAPI()


def _httpfs() -> tuple[bool, str | None]:
    config = {"autoinstall_known_extensions": False}
    directory = os.environ.get("DUCKDB_EXTENSION_DIRECTORY")
    if directory:
        config["extension_directory"] = directory
    try:
        con = duckdb.connect(config=config)
        con.execute("LOAD httpfs")
        return True, None
    except duckdb.Error as exc:
        return False, str(exc)


@app.get("/health")
def health() -> dict:
    loaded, error = _httpfs()
    return {
        "status": "ok",
        "release": RELEASE,
        "httpfs": loaded,
        "httpfs_error": error,
        "greeting": os.environ.get("EGOGRAPH_GREETING"),
    }
