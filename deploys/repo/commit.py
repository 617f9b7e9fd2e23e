"""The commit a run moves to: one per host and run, so the checkout, the sync and the
restart agree, and a dry run can predict all three."""

from __future__ import annotations

from typing import TypeAlias

from ..common.snapshot import read_fact
from .facts import GitCheckout


class RunCommit:
    """What ``ref`` points to on ``url``, looked up on the target (``git ls-remote``) the
    first time an operation needs it — while the run executes, not while the deploy is
    prepared, so hosts look it up in parallel and inside the one state read of a no-op run
    — and then kept for the rest of the run. Unknown (``None``) while git is missing."""

    def __init__(self, path: str, url: str, ref: str) -> None:
        self.path, self.url, self.ref = path, url, ref
        self._commit: str | None = None

    def resolve(self, remote: str | None = None) -> str | None:
        """The run's commit; ``remote`` is a fresh :class:`GitCheckout` answer, if the
        caller has one (it saves a read)."""
        if self._commit is None:
            if remote is None:
                state = read_fact(GitCheckout, path=self.path, url=self.url, ref=self.ref)
                remote = state["remote"]
            self._commit = remote
        return self._commit

    def __repr__(self) -> str:
        return f"RunCommit({self.ref!r} at {self.url!r})"


Commit: TypeAlias = "str | RunCommit | None"
"""An operation's ``commit`` argument: a known commit, the run's commit, or unknown."""


def commit_of(commit: Commit) -> str | None:
    return commit.resolve() if isinstance(commit, RunCommit) else commit
