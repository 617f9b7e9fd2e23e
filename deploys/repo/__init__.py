"""The app's git checkout (runbook §3 clone to /opt/egograph/repo, §7 update flow)."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from ..settings import Settings
from .facts import GitCheckout
from .operations import checkout


def wanted_commit(settings: Settings) -> str | None:
    """The commit the run moves to, resolved once before any change (None if unknown yet,
    e.g. git is not installed on a fresh target; the checkout then resolves it itself)."""
    state = host.get_fact(
        GitCheckout, path=settings.repo_path, url=settings.repo_url, ref=settings.repo_branch
    )
    remote: str | None = state.get("remote")
    return remote


@deploy("App repository")
def checkout_repo(settings: Settings, commit: str | None) -> None:
    checkout(
        name=f"Check out {settings.repo_branch} at {settings.repo_path}",
        url=settings.repo_url,
        path=settings.repo_path,
        ref=settings.repo_branch,
        commit=commit,
        discard_local_changes=settings.repo_discard_local_changes,
    )
