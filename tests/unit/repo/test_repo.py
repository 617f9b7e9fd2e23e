"""The checkout operation's decisions: what it sends for a new, a current and a behind
checkout (round trips to the remote included)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api import OperationError

from deploys.repo import operations as repo_ops
from deploys.repo.facts import GitCheckout
from tests.unit.fakes import run_op

URL = "git://git.example/egograph.git"
OLD, NEW = "a" * 40, "b" * 40


def checkout(current: dict[str, Any], ref: str = "main") -> Any:
    facts = {GitCheckout: {**GitCheckout.default(), **current}}
    return run_op(repo_ops.checkout, facts, url=URL, path="/opt/egograph/repo", ref=ref)


def texts(fake: Any) -> list[str]:
    return [c.get_raw_value() for c in fake.commands]


def test_a_new_checkout_is_one_clone_without_a_second_fetch() -> None:
    cmds = texts(checkout({"remote": NEW}))
    assert cmds[0] == (
        f"mkdir -p /opt/egograph && git clone --quiet --no-checkout -- {URL} /opt/egograph/repo"
    )
    assert not any(" fetch " in c for c in cmds)
    assert cmds[1] == f"git -C /opt/egograph/repo checkout --quiet -B main {NEW}"
    assert cmds[2].endswith("--set-upstream-to origin/main main")


def test_a_pinned_commit_is_fetched_after_the_clone() -> None:
    cmds = texts(checkout({"remote": NEW}, ref=NEW))
    assert cmds[1] == (
        f"git -C /opt/egograph/repo cat-file -e '{NEW}^{{commit}}' 2>/dev/null || "
        "git -C /opt/egograph/repo fetch --quiet origin"
    )
    assert cmds[2] == f"git -C /opt/egograph/repo checkout --quiet --detach {NEW}"


def test_current_is_a_noop_and_behind_fetches_then_moves() -> None:
    here = {"exists": True, "head": NEW, "branch": "main", "origin": URL, "remote": NEW}
    fake = checkout(here)
    assert fake.commands == [] and fake.noops == [f"/opt/egograph/repo is at {NEW[:12]} (main)"]
    cmds = texts(checkout({**here, "head": OLD}))
    assert cmds[0] == (
        "git -C /opt/egograph/repo fetch --quiet --prune origin "
        "+refs/heads/main:refs/remotes/origin/main"
    )
    assert cmds[1] == f"git -C /opt/egograph/repo checkout --quiet -B main {NEW}"


# --- the remote's answer: a failed read is a failed check, not drift ----------------------


def read_checkout(path: Path, url: str, ref: str) -> dict[str, Any]:
    """GitCheckout's own command in a real shell with the real git, parsed by its process."""
    fact = GitCheckout()
    text = fact.command(path=str(path), url=url, ref=ref).get_raw_value()
    done = subprocess.run(["sh", "-c", text], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return fact.process(done.stdout.splitlines())


@pytest.fixture
def remote(tmp_path: Path) -> tuple[str, str]:
    """A bare repository with one commit on main and a tag v1: (file:// URL, commit)."""
    work, bare = tmp_path / "work", tmp_path / "app.git"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(work)], check=True)
    (work / "README").write_text("app\n")
    subprocess.run([*git, "-C", str(work), "add", "README"], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-q", "-m", "one"], check=True)
    subprocess.run([*git, "-C", str(work), "tag", "-a", "v1", "-m", "v1"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    head = subprocess.run(
        ["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"file://{bare}", head


def test_the_fact_reads_a_branch_a_tag_and_a_pinned_commit(
    tmp_path: Path, remote: tuple[str, str]
) -> None:
    url, head = remote
    missing = tmp_path / "checkout"
    for ref, want in (("main", head), ("v1", head), (head, head)):
        got = read_checkout(missing, url, ref)
        assert (got["remote"], got["remote_error"], got["remote_checked"]) == (want, None, True)
        assert repo_ops.remote_problem(got, url, ref) is None


def test_an_unreachable_remote_is_an_error_naming_repo_url(tmp_path: Path) -> None:
    # port 1 on loopback: nothing listens, git daemon's protocol is refused at once
    url = "git://127.0.0.1:1/egograph.git"
    got = read_checkout(tmp_path / "checkout", url, "main")
    assert got["remote"] is None and got["remote_checked"] is True
    assert "unable to connect" in got["remote_error"], got
    assert "Connection refused" in got["remote_error"], got
    problem = repo_ops.remote_problem(got, url, "main")
    assert problem is not None and problem.startswith(f"repo_url {url}: git ls-remote failed")
    nothing = read_checkout(tmp_path / "checkout", f"file://{tmp_path}/nothing.git", "main")
    assert nothing["remote_error"] and "does not appear to be a git repository" in str(
        nothing["remote_error"]
    )


def test_a_ref_the_remote_lacks_is_an_error_naming_repo_branch(
    tmp_path: Path, remote: tuple[str, str]
) -> None:
    url, _ = remote
    got = read_checkout(tmp_path / "checkout", url, "no-such-branch")
    assert (got["remote"], got["remote_error"]) == (None, None)
    assert repo_ops.remote_problem(got, url, "no-such-branch") == (
        f"repo_branch 'no-such-branch': neither a branch nor a tag on repo_url {url}; "
        "expected a ref the remote has (or a 40-hex commit)"
    )


def test_the_check_refuses_before_anything_and_passes_a_readable_remote() -> None:
    failed = {"remote_checked": True, "remote_error": "fatal: unable to connect to x"}
    for executing in (True, False):
        with pytest.raises(OperationError) if not executing else _no_raise():
            fake = run_remote_answers(failed, executing=executing)
            (cmd,) = texts(fake)
            assert cmd.startswith(f"echo 'repo_url {URL}: git ls-remote failed on the target")
            assert cmd.endswith("nothing was changed' >&2; exit 1")
    ok = run_remote_answers({"remote_checked": True, "remote": NEW})
    assert ok.commands == [] and ok.noops == [f"{URL} has main at {NEW[:12]}"]
    fresh = run_remote_answers({})
    assert fresh.commands == [] and fresh.noops == [
        "git is not installed yet: the checkout asks the remote"
    ]


def test_the_checkout_refuses_an_unreadable_remote_too() -> None:
    fake = checkout({"remote_checked": True, "remote_error": "fatal: x"})
    (cmd,) = texts(fake)
    assert "repo_url git://git.example/egograph.git: git ls-remote failed" in cmd
    assert cmd.endswith("exit 1")


def test_a_password_in_repo_url_is_not_shown() -> None:
    url = "https://deploy:s3cret@git.example/egograph.git"
    problem = repo_ops.remote_problem({"remote_error": "fatal: x"}, url, "main")
    assert problem is not None and "s3cret" not in problem
    assert "https://***@git.example/egograph.git" in problem


def run_remote_answers(current: dict[str, Any], *, executing: bool = True) -> Any:
    facts = {GitCheckout: {**GitCheckout.default(), **current}}
    return run_op(
        repo_ops.remote_answers, facts, executing=executing, url=URL,
        path="/opt/egograph/repo", ref="main",
    )  # fmt: skip


@contextlib.contextmanager
def _no_raise() -> Iterator[None]:
    yield
