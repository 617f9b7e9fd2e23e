"""The release history (pure logic, and the shell that keeps it on the target, run in a real
shell against a real git clone) and the choice of a rollback's target."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from deploys.common.stamps import RELEASE_REF_PREFIX
from deploys.services.history import (
    RollbackPlan,
    history_update_shell,
    parse_history,
    render_history,
    rollback_plan,
    updated_history,
)

A, B, C, D = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)


def entries(*commits: str) -> list[dict[str, str]]:
    return [{"commit": c, "at": f"2026-12-03T0{i}:00:00Z"} for i, c in enumerate(commits)]


def test_updated_history_appends_moves_and_trims() -> None:
    assert [e["commit"] for e in updated_history([], A, "t", 5)] == [A]
    assert [e["commit"] for e in updated_history(entries(A, B, C), A, "t", 5)] == [B, C, A]
    assert [e["commit"] for e in updated_history(entries(A, B, C), D, "t", 2)] == [C, D]
    assert updated_history(entries(A), A, "t9", 1) == [{"commit": A, "at": "t9"}]


def test_parse_history_round_trip_and_bad_input() -> None:
    history = entries(A, B)
    assert parse_history(render_history(history)) == history
    assert parse_history(render_history([])) == []
    assert parse_history("") == []
    assert parse_history("{not json") == []
    assert parse_history('{"commit": "x"}') == []
    assert parse_history(json.dumps([{"commit": "short"}, {"commit": A}])) == [
        {"commit": A, "at": ""}
    ]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def clone(tmp_path: Path) -> tuple[Path, list[str]]:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    commits = []
    for i in range(4):
        (repo / "f").write_text(str(i))
        git(repo, "add", "f")
        git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"c{i}")
        commits.append(git(repo, "rev-parse", "HEAD"))
    return repo, commits


def run_update(repo: Path, history: Path, head: str, keep: int) -> None:
    script = (
        "head="
        + head
        + "\n"
        + history_update_shell(history_file=str(history), repo_path=str(repo), keep=keep)
    )
    subprocess.run(["sh", "-euc", script], check=True)


def test_shell_matches_the_pure_update_and_keeps_refs(
    clone: tuple[Path, list[str]], tmp_path: Path
) -> None:
    repo, commits = clone
    history = tmp_path / "releases.json"
    expected: list[dict[str, str]] = []
    for commit in [commits[0], commits[1], commits[2], commits[0], commits[3]]:
        run_update(repo, history, commit, keep=3)
        expected = updated_history(expected, commit, "-", 3)
        got = parse_history(history.read_text())
        assert [e["commit"] for e in got] == [e["commit"] for e in expected]
        assert history.stat().st_mode & 0o777 == 0o600
        assert not (tmp_path / "releases.json.tmp").exists()
        refs = git(repo, "for-each-ref", "--format=%(refname)", RELEASE_REF_PREFIX).split()
        assert sorted(refs) == sorted(RELEASE_REF_PREFIX + e["commit"] for e in expected)
    assert [e["commit"] for e in expected] == [commits[2], commits[0], commits[3]]
    # The file is what the pure renderer writes (one entry a line), at aside.
    assert history.read_text().count("\n") == 5


def test_refs_keep_a_commit_the_branch_lost(clone: tuple[Path, list[str]], tmp_path: Path) -> None:
    repo, commits = clone
    run_update(repo, tmp_path / "releases.json", commits[3], keep=5)
    git(repo, "reset", "-q", "--hard", commits[0])  # as a force-push upstream would
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    assert git(repo, "cat-file", "-t", commits[3]) == "commit"


def marker(failed: str, restored: str) -> dict[str, str]:
    return {"failed_commit": failed, "restored_commit": restored, "at": "t"}


def test_rollback_goes_to_the_release_before_the_current_one() -> None:
    plan = rollback_plan(C, entries(A, B, C), None, None)
    assert plan == RollbackPlan(C, B, refuse=C)
    assert plan.moves


def test_rollback_after_a_rollback_stays() -> None:
    # A manual rollback C -> B left a marker refusing C: a second rollback changes nothing.
    plan = rollback_plan(B, entries(A, C, B), marker(C, B), None)
    assert plan == RollbackPlan(B, B)
    assert not plan.moves
    # after an automatic rollback of D (never healthy, not in the history) too
    assert rollback_plan(C, entries(A, B, C), marker(D, C), None) == RollbackPlan(C, C)


def test_rollback_to_the_refused_commit_clears_the_marker() -> None:
    plan = rollback_plan(B, entries(A, C, B), marker(C, B), C[:7])
    assert plan == RollbackPlan(B, C, refuse=None)
    assert plan.moves


def test_rollback_further_keeps_refusing_the_first_commit_left() -> None:
    assert rollback_plan(B, entries(A, C, B), marker(C, B), A) == RollbackPlan(B, A, refuse=C)


def test_rollback_skips_the_refused_commit_once_the_marker_is_not_on_head() -> None:
    # the marker refuses C, but B runs by some other way: the target is A, not C
    assert rollback_plan(B, entries(A, C, B), marker(C, D), None) == RollbackPlan(B, A, refuse=C)


def test_configuration_marker_does_not_refuse_a_commit() -> None:
    assert rollback_plan(C, entries(A, B, C), marker(C, C), None) == RollbackPlan(C, B, refuse=C)


@pytest.mark.parametrize(
    ("head", "history", "to", "says"),
    [
        (C, entries(C), None, "no earlier release recorded"),
        (C, [], None, "no earlier release recorded"),
        (C, entries(A, B, C), "e" * 40, "is not in the release history"),
        (C, entries(A, B, C), "xyz", "expected a commit (7 to 40 hex digits)"),
        (C, entries(A, B, C), "abc", "expected a commit"),
        (None, entries(A, B), None, "not checked out"),
    ],
)
def test_refusals(
    head: str | None, history: list[dict[str, str]], to: str | None, says: str
) -> None:
    plan = rollback_plan(head, history, None, to)
    assert plan.target is None and not plan.moves
    assert plan.error is not None and says in plan.error


def test_ambiguous_prefix() -> None:
    one, two = "abcdef1" + "0" * 33, "abcdef1" + "1" * 33
    plan = rollback_plan(C, entries(one, two, C), None, "abcdef1")
    assert plan.error is not None and "names several releases" in plan.error
