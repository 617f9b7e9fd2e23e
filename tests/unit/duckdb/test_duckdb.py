"""DuckDB extensions: the no-Python check a run makes (in a real shell, on a fake app
environment and user database) and what the operation decides from it."""

from __future__ import annotations

import os
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


def app_environment(tmp_path: Path, version: str = "1.4.3") -> str:
    """A venv as far as the check looks: an executable python and duckdb's dist-info."""
    venv = tmp_path / "repo/.venv"
    (venv / f"lib/python3.13/site-packages/duckdb-{version}.dist-info").mkdir(parents=True)
    python = venv / "bin/python"
    python.parent.mkdir()
    # Started only if the check fell back to asking DuckDB: it must not be here.
    python.write_text("#!/bin/sh\necho PYTHON-STARTED >&2\nexit 3\n")
    python.chmod(0o755)
    return str(python)


def user_database(tmp_path: Path, homes: dict[str, str]) -> dict[str, str]:
    """An environment whose ``getent passwd`` knows ``homes`` (user -> HOME) only."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    lines = "\n".join(
        f'  {u}) echo "{u}:x:999:999::{h}:/usr/sbin/nologin" ;;' for u, h in homes.items()
    )
    getent = bin_dir / "getent"
    getent.write_text(
        f'#!/bin/sh\n[ "$1" = passwd ] || exit 2\ncase "$2" in\n{lines}\n  *) exit 2 ;;\nesac\n'
    )
    getent.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def check(
    tmp_path: Path, python: str, users: list[str], expect: list[str], env: dict[str, str]
) -> dict[str, Any]:
    fact = DuckdbExtensions()
    cmd = fact.command(
        python=python, users=users, expect=expect, state_dir=str(tmp_path / "state")
    ).get_raw_value()
    proc = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True, env=env)
    assert "PYTHON-STARTED" not in proc.stderr
    return fact.process(proc.stdout.splitlines())


def extension_file(home: Path, name: str, version: str = "1.4.3") -> Path:
    path = home / f".duckdb/extensions/v{version}/{PLATFORM}/{name}.duckdb_extension"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0")
    return path


@needs_known_platform
def test_each_users_home_is_checked_without_python(tmp_path: Path) -> None:
    python = app_environment(tmp_path)
    root_home, app_home = tmp_path / "root", tmp_path / "var/lib/egograph"
    httpfs = extension_file(app_home, "httpfs")
    extension_file(root_home, "spatial")
    (tmp_path / "state").mkdir()
    (tmp_path / f"state/duckdb-builtin-1.4.3-{PLATFORM}").write_text("json\nparquet\n")
    env = user_database(tmp_path, {"root": str(root_home), "egograph": str(app_home)})

    found = check(tmp_path, python, ["egograph", "root", "ghost"], ["httpfs", "json"], env)

    assert found == {
        "duckdb": "1.4.3",
        "platform": PLATFORM,
        "users": {
            "egograph": {
                "home": str(app_home),
                "extensions": {
                    "httpfs": {"installed": True, "path": str(httpfs)},
                    "json": {"installed": True, "path": "(BUILT-IN)"},
                },
                "unchecked": [],
            },
            # root's DuckDB has no httpfs in ITS home, whatever another user has
            "root": {
                "home": str(root_home),
                "extensions": {"json": {"installed": True, "path": "(BUILT-IN)"}},
                "unchecked": ["httpfs"],
            },
            # no such user (yet): no HOME to look in
            "ghost": {
                "home": None,
                "extensions": {"json": {"installed": True, "path": "(BUILT-IN)"}},
                "unchecked": ["httpfs"],
            },
        },
    }
    # Another DuckDB version has neither the files nor the list yet.
    other = app_environment(tmp_path / "other", version="1.5.0")
    assert check(tmp_path, other, ["egograph"], ["httpfs", "json"], env)["users"]["egograph"][
        "unchecked"
    ] == ["httpfs", "json"]


def test_without_a_duckdb_version_everything_is_left_to_duckdb(tmp_path: Path) -> None:
    python = app_environment(tmp_path)
    for dist_info in (tmp_path / "repo/.venv/lib/python3.13/site-packages").iterdir():
        dist_info.rmdir()
    env = user_database(tmp_path, {"root": str(tmp_path)})
    found = check(tmp_path, python, ["root"], ["httpfs"], env)
    assert found["duckdb"] is None
    assert found["users"]["root"] == {
        "home": str(tmp_path),
        "extensions": {},
        "unchecked": ["httpfs"],
    }


def test_no_environment_yet_reads_as_empty(tmp_path: Path) -> None:
    env = user_database(tmp_path, {"root": str(tmp_path)})
    assert check(tmp_path, str(tmp_path / "none/bin/python"), ["root"], ["httpfs"], env) == {}


def install(current: dict[str, Any], users: list[str] | None = None) -> Any:
    return run_op(
        duckdb_ops.duckdb_extensions,
        {DuckdbExtensions: current},
        python="/opt/egograph/repo/.venv/bin/python",
        extensions=["httpfs", "json"],
        users=users,
        repository="http://mirror.example/duckdb",
    )


def found_for(**users: list[str]) -> dict[str, Any]:
    """The check's result with these extensions found for each user, the others not."""
    names = ["httpfs", "json"]
    return {
        "duckdb": "1.4.3",
        "platform": "linux_amd64",
        "users": {
            u: {
                "home": f"/home/{u}",
                "extensions": {n: {"installed": True} for n in have},
                "unchecked": [n for n in names if n not in have],
            }
            for u, have in users.items()
        },
    }


def test_everything_found_for_every_user_is_a_noop() -> None:
    fake = install(found_for(egograph=["httpfs", "json"]), users=["egograph"])
    assert fake.commands == []
    assert fake.noops == ["DuckDB 1.4.3: httpfs, json installed for egograph"]
    # The runbook's root is the default user.
    root = install(found_for(root=["httpfs", "json"]))
    assert root.noops == ["DuckDB 1.4.3: httpfs, json installed for root"]


def test_what_a_user_lacks_is_installed_into_its_home_by_one_python() -> None:
    fake = install(
        found_for(egograph=["httpfs", "json"], pipelines=["httpfs"]),
        users=["egograph", "pipelines"],
    )
    assert fake.round_trips == 1
    (cmd,) = [c.get_raw_value() for c in fake.commands]
    assert cmd.startswith('u=pipelines; h=$(getent passwd "$u" | cut -d: -f6)\n')
    assert 'HOME="$h" /opt/egograph/repo/.venv/bin/python -c ' in cmd
    assert cmd.endswith(
        " http://mirror.example/duckdb "
        "'/var/lib/egograph-deploy/duckdb-builtin-{version}-{platform}' json "
        '&& chown -R "$u:" "$h/.duckdb"'
    )
    assert "(BUILT-IN)" in cmd and "INSTALL" in cmd and "extension_directory" not in cmd
    fresh = install({}, users=["egograph"])  # no environment yet (a dry run on a new host)
    (first,) = fresh.commands
    assert first.get_raw_value().startswith("u=egograph;")
    assert " httpfs json && chown" in first.get_raw_value()


def test_two_users_lacking_are_two_pythons_in_one_round_trip() -> None:
    fake = install(found_for(a=[], b=["json"]), users=["a", "b"])
    assert fake.round_trips == 1
    assert [c.get_raw_value().split(";")[0] for c in fake.commands] == ["u=a", "u=b"]


def test_a_user_without_a_home_directory_stops_the_install(tmp_path: Path) -> None:
    env = user_database(tmp_path, {"egograph": "/nonexistent"})
    cmd = duckdb_ops.install_for("egograph", "/bin/false", "", ["httpfs"]).get_raw_value()
    proc = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert "DuckDB extensions for egograph: its HOME (/nonexistent) is not a directory" in (
        proc.stderr
    )


def test_the_fact_without_expect_is_duckdb_extensions_itself_per_user() -> None:
    cmd = DuckdbExtensions().command(python="/py", users="root,egograph").get_raw_value()
    assert cmd.startswith("if [ -x /py ]; then for u in root egograph; do ")
    assert 'HOME="$h" /py -c ' in cmd and "from duckdb_extensions()" in cmd
    lines = [
        '{"user": "root", "home": "/root", "duckdb": "1.4.3", "platform": "linux_amd64", '
        '"extensions": {"httpfs": {"installed": true}}}',
        '{"user": "egograph", "home": null, "duckdb": "1.4.3", "error": "IO Error: x"}',
    ]
    assert DuckdbExtensions().process(lines) == {
        "duckdb": "1.4.3",
        "platform": "linux_amd64",
        "users": {
            "root": {"home": "/root", "extensions": {"httpfs": {"installed": True}}},
            "egograph": {"home": None, "error": "IO Error: x"},
        },
    }
