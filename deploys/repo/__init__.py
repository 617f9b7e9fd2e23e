"""The app's git checkout (runbook §3 clone to /opt/egograph/repo, §7 update flow)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyinfra.api import deploy

from .commit import Commit, RunCommit
from .operations import checkout, remote_answers

if TYPE_CHECKING:
    from ..settings import Settings


def run_commit(settings: Settings) -> RunCommit:
    """The commit this run moves the checkout to (looked up when first needed)."""
    return RunCommit(settings.repo_path, settings.repo_url, settings.repo_branch)


@deploy("App repository")
def checkout_repo(settings: Settings, commit: Commit) -> None:
    checkout(
        name=f"Check out {settings.repo_branch} at {settings.repo_path}",
        url=settings.repo_url,
        path=settings.repo_path,
        ref=settings.repo_branch,
        commit=commit,
        discard_local_changes=settings.repo_discard_local_changes,
    )


@deploy("App repository check")
def check_remote(settings: Settings) -> None:
    """First in a run: an unreadable ``repo_url`` (or a ``repo_branch`` it lacks) stops the
    run before anything changes, and fails a drift check instead of passing for drift."""
    remote_answers(
        name=f"repo_url answers with {settings.repo_branch}",
        url=settings.repo_url,
        path=settings.repo_path,
        ref=settings.repo_branch,
    )
