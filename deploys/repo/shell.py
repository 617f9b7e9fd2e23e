"""Shell the repository's users run: putting the checkout at a commit (a sync that fails,
a rollback)."""

from __future__ import annotations

import shlex


def checkout_command(repo_path: str, ref: str, commit_var: str) -> str:
    """Shell to put the checkout at ``$commit_var``: on ``ref`` as a branch, or detached
    when ``ref`` is itself a commit."""
    q = shlex.quote
    if len(ref) == 40 and all(c in "0123456789abcdef" for c in ref):
        return f'git -C {q(repo_path)} checkout -q -f --detach "${commit_var}"'
    return f'git -C {q(repo_path)} checkout -q -f -B {q(ref)} "${commit_var}"'
