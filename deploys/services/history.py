"""The release history on the target and the choice of a rollback's target (pure: no pyinfra).

When every service of a release is healthy, the release script appends its commit to
``<STATE_DIR>/releases.json`` (newest last, ``{"commit", "at"}`` each; a commit already
listed moves to the end), trims it to the last ``release_keep`` entries, and keeps each
listed commit reachable in the app's clone with the ref ``refs/egograph/releases/<commit>``
(refs of commits trimmed off are deleted), so a later fetch, force-push or ``git gc`` cannot
lose it. ``uv sync --locked`` re-creates that commit's environment from ``uv.lock`` (from
uv's cache when it still holds the wheels).

``egodeploy rollback`` returns to an entry of that history (:func:`rollback_plan`).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any

from ..common.stamps import RELEASE_REF_PREFIX

SHA = re.compile(r"^[0-9a-f]{40}$")
COMMIT_PREFIX = re.compile(r"^[0-9a-f]{7,40}$")
ENTRY_FMT = '  {"commit": "%s", "at": "%s"}'
"""One entry, one line: the shell that updates the file greps entries back by line."""


def parse_history(text: str) -> list[dict[str, str]]:
    """The history file's entries, oldest first; ``[]`` for a missing or unreadable file
    (an entry without a 40-hex commit is dropped)."""
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return []
    if not isinstance(data, list):
        return []
    return [
        {"commit": str(e["commit"]), "at": str(e.get("at", ""))}
        for e in data
        if isinstance(e, dict) and isinstance(e.get("commit"), str) and SHA.match(e["commit"])
    ]


def updated_history(
    history: list[dict[str, str]], commit: str, at: str, keep: int
) -> list[dict[str, str]]:
    """The history once ``commit`` was released healthy at ``at``: moved (or added) to the
    end, then only the last ``keep``. What :func:`history_update_shell` does on the target."""
    entries = [e for e in history if e["commit"] != commit]
    entries.append({"commit": commit, "at": at})
    return entries[-keep:]


def render_history(history: list[dict[str, str]]) -> str:
    """The file's text, as the release script writes it (one entry a line)."""
    lines = ",\n".join(ENTRY_FMT % (e["commit"], e["at"]) for e in history)
    return f"[\n{lines}\n]\n" if history else "[]\n"


def history_update_shell(*, history_file: str, repo_path: str, keep: int) -> str:
    """Shell run when a release is healthy (``$head``: its commit): the history updated as
    :func:`updated_history` says, written atomically (a temporary file, 0600, renamed), and
    the refs that keep each listed commit in the clone: made for every listed one, deleted
    for every other commit under the prefix."""
    q = shlex.quote
    git = f"git -C {q(repo_path)}"
    entry = '"commit": "[0-9a-f]\\{40\\}", "at": "[^"]*"'
    return f"""\
  kept=$( {{ grep -o {q(entry)} {q(history_file)} 2>/dev/null | grep -v "\\"$head\\"" || true;
    printf '"commit": "%s", "at": "%s"\\n' "$head" "$(date -u +%FT%TZ)"; }} | tail -n {int(keep)})
  (umask 077; {{ echo "["; printf '%s\\n' "$kept" | sed 's/^/  {{/; s/$/}},/; $ s/,$//'; echo "]"; }} \\
    > {q(history_file + ".tmp")}) && mv -f {q(history_file + ".tmp")} {q(history_file)}
  for c in $(printf '%s\\n' "$kept" | cut -d'"' -f4); do
    {git} update-ref {q(RELEASE_REF_PREFIX)}"$c" "$c" 2>/dev/null
  done
  {git} for-each-ref --format='%(refname)' {q(RELEASE_REF_PREFIX)} | while read -r r; do
    case "$kept" in *"${{r##*/}}"*) ;; *) {git} update-ref -d "$r" ;; esac
  done"""


@dataclass(frozen=True)
class RollbackPlan:
    """What ``egodeploy rollback`` does on one host: from ``head`` to ``target``.

    ``refuse``: the commit the release marker names once the rollback is healthy, so the
    update flow and the drift check do not redeploy it (None: the target is the refused
    commit itself, or the host is already there: the marker goes, or stays, as for any
    release). ``error``: why there is no rollback (nothing changes)."""

    head: str | None
    target: str | None
    refuse: str | None = None
    error: str | None = None

    @property
    def moves(self) -> bool:
        return self.error is None and self.target != self.head


def refused_commit(marker: Any) -> str | None:
    """The commit a release marker refuses (None: no marker, or a marker of a failed
    configuration change, whose commit stays deployable)."""
    if not isinstance(marker, dict):
        return None
    failed = marker.get("failed_commit")
    if not failed or failed == marker.get("restored_commit"):
        return None
    return str(failed)


def rollback_plan(
    head: str | None, history: list[dict[str, str]], marker: Any, to: str | None
) -> RollbackPlan:
    """Where a rollback goes on a host whose checkout is at ``head``:

    - ``to`` given: the history's commit it names (a full commit or a unique prefix of at
      least 7 hex digits); the commit the marker refuses is allowed (it is the user's
      choice: the rollback "forward" to it clears the marker once it is healthy);
    - else, after a rollback (the marker's restored commit runs): that commit again, so a
      second ``rollback`` changes nothing;
    - else the newest release in the history other than ``head`` and the refused commit:
      the one before the current release.
    """
    commits = [e["commit"] for e in history]
    refused = refused_commit(marker)
    listed = ", ".join(c[:12] for c in reversed(commits)) or "none"
    if head is None:
        return RollbackPlan(head, None, error="the app is not checked out: nothing to roll back")
    if to is not None:
        wanted = to.strip().lower()
        if not COMMIT_PREFIX.match(wanted):
            return RollbackPlan(
                head,
                None,
                error=f"--to {to!r}: expected a commit (7 to 40 hex digits) from the release "
                f"history (newest first: {listed})",
            )
        matched = [c for c in dict.fromkeys([*commits, *([refused] if refused else [])])
                   if c.startswith(wanted)]  # fmt: skip
        if len(matched) != 1:
            why = "names several releases" if matched else "is not in the release history"
            return RollbackPlan(
                head,
                None,
                error=f"--to {to}: {why} (newest first: {listed}; release_keep sets how many "
                "are kept); nothing was changed",
            )
        target = matched[0]
    elif refused and isinstance(marker, dict) and marker.get("restored_commit") == head:
        target = head
    else:
        earlier = [c for c in commits if c not in (head, refused)]
        if not earlier:
            return RollbackPlan(
                head,
                None,
                error=f"no earlier release recorded to roll back to (history, newest first: "
                f"{listed}); nothing was changed",
            )
        target = earlier[-1]
    if target in (head, refused):
        return RollbackPlan(head, target)
    return RollbackPlan(head, target, refuse=refused or head)
