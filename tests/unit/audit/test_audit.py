"""The audit log: the entry's command run by a real shell, and the callbacks in a real
pyinfra run (``@local``): an entry for a run that changed something or failed, none for a
run that changed nothing, and no operation of its own."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploys.audit.entry import FIELDS, append_command, entry_fields, parse_entries


def _repo(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "repo"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    return repo, head.stdout.strip()


def _fields(started: float, failed: str | None, changed: list[str]) -> dict[str, Any]:
    return entry_fields(
        controller="ci@runner",
        entry="deploys/update.py",
        started=started,
        ended=started + 12.34,
        commit_before="a" * 40,
        changed=changed,
        failed=failed,
    )


def test_an_entry_is_one_json_line_with_the_targets_commit_appended_to_a_0600_file(
    tmp_path: Path,
) -> None:
    repo, head = _repo(tmp_path)
    state = tmp_path / "state"
    started = time.time()
    # Quotes, %, backslashes and $(...) in an operation's name stay text.
    odd = ['Services | a 100% "quoted" \\n $(touch /tmp/pwned) `id`', "Env files | x"]
    for _ in range(2):
        command = append_command(
            _fields(started, None, odd), repo_path=str(repo), started=started, state_dir=str(state)
        )
        subprocess.run(["sh", "-c", command], check=True)
    lines = (state / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 2
    entry = json.loads(lines[0])
    assert list(entry) == list(FIELDS)
    assert entry["commit_after"] == head and entry["result"] == "success"
    assert entry["changed"] == odd and entry["failed"] is None
    assert entry["duration_s"] == 12.3 and entry["controller"] == "ci@runner"
    assert oct((state / "audit.jsonl").stat().st_mode & 0o777) == "0o600"
    assert oct(state.stat().st_mode & 0o777) == "0o700"
    assert not Path("/tmp/pwned").exists()


def test_a_failed_run_is_rolled_back_only_when_the_marker_was_written_during_it(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    marker = state / "release.rolled-back.json"
    started = time.time()
    marker.write_text("{}")
    os.utime(marker, (started - 3600, started - 3600))  # an earlier run's marker

    def result() -> dict[str, Any]:
        command = append_command(
            _fields(started, "Services | release", []),
            repo_path=str(tmp_path / "no-repo"),
            started=started,
            state_dir=str(state),
        )
        subprocess.run(["sh", "-c", command], check=True)
        return parse_entries((state / "audit.jsonl").read_text().splitlines())[-1]

    first = result()
    assert (first["result"], first["commit_after"]) == ("failed", None)
    marker.write_text("{}")  # now: the release script rolled back in this run
    assert result()["result"] == "rolled_back"


def test_lines_that_are_not_entries_are_skipped() -> None:
    assert parse_entries(['{"result": "success"}', '{"time": "cut sho', "[1]", ""]) == [
        {"result": "success"}
    ]


# --- the callbacks, in a real pyinfra run --------------------------------------------------


def _run(tmp_path: Path, steps: Callable[[], None]) -> tuple[Any, list[dict[str, Any]]]:
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.connect import connect_all, disconnect_all
    from pyinfra.api.deploy import add_deploy, deploy
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.api.operations import run_ops

    from deploys import audit
    from deploys.common.snapshot import fact_read
    from deploys.repo.facts import GitCheckout

    repo, _ = _repo(tmp_path)
    state_dir = tmp_path / "state"

    @deploy("Audited")
    def audited() -> None:
        audit.register(
            audit.RunAudit(
                entry="deploys/test.py",
                repo_path=str(repo),
                checkout=fact_read(GitCheckout, path=str(repo), url="-", ref="main"),
                state_dir=str(state_dir),
            )
        )
        steps()

    state = State(Inventory((["@local"], {})), Config())
    connect_all(state)
    add_deploy(state, audited)
    with contextlib.suppress(PyinfraError):  # "No hosts remaining!": the one host failed
        run_ops(state)
    disconnect_all(state)
    log = state_dir / "audit.jsonl"
    return state, parse_entries(log.read_text().splitlines()) if log.exists() else []


def test_a_run_that_changes_nothing_writes_nothing(tmp_path: Path) -> None:
    from pyinfra.operations import files

    def steps() -> None:
        files.directory(name="The temp dir", path=str(tmp_path))

    state, entries = _run(tmp_path, steps)
    assert entries == []
    # no operation of its own: the run's operations are the deploy's
    assert len(state.get_op_order()) == 1


def test_a_run_that_changes_something_is_recorded_with_the_operations_that_changed(
    tmp_path: Path,
) -> None:
    from pyinfra.operations import files

    made = tmp_path / "made"

    def steps() -> None:
        files.directory(name="The temp dir", path=str(tmp_path))
        files.directory(name="A new dir", path=str(made))

    state, entries = _run(tmp_path, steps)
    assert len(entries) == 1, entries
    entry = entries[0]
    assert entry["changed"] == ["Audited | A new dir"]
    assert entry["result"] == "success" and entry["failed"] is None
    assert entry["entry"] == "deploys/test.py" and "@" in entry["controller"]
    assert entry["commit_after"] and len(entry["commit_after"]) == 40
    assert made.is_dir()
    # pyinfra's own count: the entry is not an operation that changed
    assert state.get_results_for_host(next(iter(state.inventory))).success_ops == 2


def test_a_run_that_fails_is_recorded_at_the_failure_naming_the_operation(
    tmp_path: Path,
) -> None:
    from pyinfra.operations import files, server

    def steps() -> None:
        files.directory(name="A new dir", path=str(tmp_path / "made"))
        server.shell(name="Something that fails", commands=["exit 3"])
        files.directory(name="Never reached", path=str(tmp_path / "never"))

    _, entries = _run(tmp_path, steps)
    assert len(entries) == 1, entries
    entry = entries[0]
    assert entry["result"] == "failed"
    assert entry["failed"] == "Audited | Something that fails"
    assert entry["changed"] == ["Audited | A new dir"]
    assert not (tmp_path / "never").exists()


def test_an_ignored_error_is_not_the_runs_end(tmp_path: Path) -> None:
    from pyinfra.operations import files, server

    def steps() -> None:
        server.shell(name="Tolerated", commands=["exit 3"], _ignore_errors=True)
        files.directory(name="A new dir", path=str(tmp_path / "made"))

    _, entries = _run(tmp_path, steps)
    assert [e["result"] for e in entries] == ["success"]
    assert entries[0]["changed"] == ["Audited | A new dir"]
