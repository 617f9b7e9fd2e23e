"""DuckDB extensions: the no-Python check a run makes (in a real shell, on a fake app
environment) and what the operation decides from it."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import pytest

from deploys.duckdb import operations as duckdb_ops
from deploys.duckdb.facts import DuckdbExtensions
from tests.unit.fakes import run_op

PLATFORM = {"x86_64": "linux_amd64", "aarch64": "linux_arm64"}.get(platform.machine())
needs_known_platform = pytest.mark.skipif(PLATFORM is None, reason="not x86_64/aarch64")


def app_environment(tmp_path: Path, version: str = "1.4.4") -> str:
    """A venv as far as the check looks: an executable python and duckdb's dist-info."""
    venv = tmp_path / "repo/.venv"
    (venv / f"lib/python3.13/site-packages/duckdb-{version}.dist-info").mkdir(parents=True)
    python = venv / "bin/python"
    python.parent.mkdir()
    # Started only if the check fell back to asking DuckDB: it must not be here.
    python.write_text("#!/bin/sh\necho PYTHON-STARTED >&2\nexit 3\n")
    python.chmod(0o755)
    return str(python)


def check(tmp_path: Path, python: str, expect: list[str], directory: Path) -> dict[str, Any]:
    fact = DuckdbExtensions()
    cmd = fact.command(
        python=python, directory=str(directory), expect=expect, state_dir=str(tmp_path / "state")
    ).get_raw_value()
    proc = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True)
    assert "PYTHON-STARTED" not in proc.stderr
    return fact.process(proc.stdout.splitlines())


@needs_known_platform
def test_a_run_finds_files_and_built_in_extensions_without_python(tmp_path: Path) -> None:
    python = app_environment(tmp_path)
    extensions = tmp_path / "extensions"
    (extensions / f"v1.4.4/{PLATFORM}").mkdir(parents=True)
    (extensions / f"v1.4.4/{PLATFORM}/httpfs.duckdb_extension").write_bytes(b"\0")
    (tmp_path / "state").mkdir()
    (tmp_path / f"state/duckdb-builtin-1.4.4-{PLATFORM}").write_text("json\nparquet\n")

    found = check(tmp_path, python, ["httpfs", "json", "spatial"], extensions)

    assert found == {
        "duckdb": "1.4.4",
        "platform": PLATFORM,
        "extensions": {
            "httpfs": {
                "installed": True,
                "path": f"{extensions}/v1.4.4/{PLATFORM}/httpfs.duckdb_extension",
            },
            "json": {"installed": True, "path": "(BUILT-IN)"},
        },
        "unchecked": ["spatial"],
    }
    # Another DuckDB version has neither the files nor the list yet.
    other = app_environment(tmp_path / "other", version="1.5.0")
    assert check(tmp_path, other, ["httpfs", "json"], extensions)["unchecked"] == [
        "httpfs",
        "json",
    ]


def test_no_environment_yet_reads_as_empty(tmp_path: Path) -> None:
    assert check(tmp_path, str(tmp_path / "none/bin/python"), ["httpfs"], tmp_path) == {}


def install(current: dict[str, Any]) -> Any:
    return run_op(
        duckdb_ops.duckdb_extensions,
        {DuckdbExtensions: current},
        python="/opt/egograph/repo/.venv/bin/python",
        extensions=["httpfs", "json"],
        repository="http://mirror.example/duckdb",
    )


def test_everything_found_is_a_noop() -> None:
    fake = install(
        {
            "duckdb": "1.4.4",
            "extensions": {"httpfs": {"installed": True}, "json": {"installed": True}},
            "unchecked": [],
        }
    )
    assert fake.commands == []
    assert fake.noops == ["DuckDB 1.4.4: httpfs, json installed"]


def test_what_was_not_found_is_asked_about_and_installed_by_one_python() -> None:
    fake = install(
        {"duckdb": "1.4.4", "extensions": {"httpfs": {"installed": True}}, "unchecked": ["json"]}
    )
    assert fake.round_trips == 1
    (cmd,) = [c.get_raw_value() for c in fake.commands]
    assert cmd.startswith("/opt/egograph/repo/.venv/bin/python -c ")
    assert cmd.endswith(
        " '' http://mirror.example/duckdb "
        "'/var/lib/egograph-deploy/duckdb-builtin-{version}-{platform}' json"
    )
    assert "(BUILT-IN)" in cmd and "INSTALL" in cmd
    fresh = install({})  # no environment yet (a dry run on a new host)
    assert fresh.commands and fresh.commands[-1].get_raw_value().endswith(" httpfs json")


def test_the_fact_without_expect_is_duckdb_extensions_itself() -> None:
    cmd = DuckdbExtensions().command(python="/py", directory="").get_raw_value()
    assert "from duckdb_extensions()" in cmd and cmd.startswith("if [ -x /py ]")
    assert DuckdbExtensions().process(['{"duckdb": "1.4.4"}']) == {"duckdb": "1.4.4"}
