"""The checkout operation's decisions: what it sends for a new, a current and a behind
checkout (round trips to the remote included)."""

from __future__ import annotations

from typing import Any

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
    assert cmds[1] == "git -C /opt/egograph/repo fetch --quiet origin"
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
