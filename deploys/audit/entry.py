"""The audit log's entries and the command that appends one: pure, no pyinfra.

One JSON object per line in ``/var/lib/egograph-deploy/audit.jsonl`` on the target, one line
per run that changed something there or failed. What the controller knows (who ran what,
when, which operations changed, which one failed) is written by it; what only the target
knows at the end (the commit checked out now, whether the release script left a rollback
marker during this run) is filled in by the same command, on the target.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..common.stamps import STATE_DIR, audit_log, release_marker

SUCCESS, FAILED, ROLLED_BACK = "success", "failed", "rolled_back"

FIELDS = (
    "time",
    "started",
    "controller",
    "entry",
    "commit_before",
    "commit_after",
    "changed",
    "failed",
    "result",
    "duration_s",
)
"""Every entry has these keys, in this order (``failed``: the operation that failed, or
null; ``result``: ``success``, ``failed`` or ``rolled_back``)."""

_AFTER = "@egograph-commit-after@"
_RESULT = "@egograph-result@"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_fields(
    *,
    controller: str,
    entry: str,
    started: float,
    ended: float,
    commit_before: str | None,
    changed: Sequence[str],
    failed: str | None,
) -> dict[str, Any]:
    """The entry as the controller knows it (``commit_after`` and ``result`` are the
    target's: see :func:`append_command`)."""
    return {
        "time": iso(ended),
        "started": iso(started),
        "controller": controller,
        "entry": entry,
        "commit_before": commit_before,
        "commit_after": _AFTER,
        "changed": list(changed),
        "failed": failed,
        "result": _RESULT,
        "duration_s": round(ended - started, 1),
    }


def append_command(
    fields: dict[str, Any], *, repo_path: str, started: float, state_dir: str = STATE_DIR
) -> str:
    """One shell command that appends the entry as one line (``>>``: ``O_APPEND``, one
    ``printf``), creating the log ``0600`` in the root-only state dir. On the target it
    fills in the commit checked out now and the result: a failed run during which the
    release script wrote its rollback marker was rolled back."""
    text = json.dumps(fields, separators=(", ", ": "))
    head, _, rest = text.partition(json.dumps(_AFTER))
    middle, _, tail = rest.partition(json.dumps(_RESULT))
    q = shlex.quote
    result = json.dumps(FAILED if fields["failed"] else SUCCESS)
    rolled = (
        f'if [ -n "$(find {q(release_marker(state_dir))} -newermt @{int(started)} '
        f'2>/dev/null)" ]; then result={q(json.dumps(ROLLED_BACK))}; fi; '
        if fields["failed"]
        else ""
    )
    return (
        f"after=$(git -C {q(repo_path)} rev-parse HEAD 2>/dev/null) && "
        'after="\\"$after\\"" || after=null; '
        f"result={q(result)}; {rolled}"
        f"install -d -m 700 {q(state_dir)} && (umask 077 && printf '%s%s%s%s%s\\n' "
        f'{q(head)} "$after" {q(middle)} "$result" {q(tail)} >> {q(audit_log(state_dir))})'
    )


def parse_entries(lines: Sequence[str]) -> list[dict[str, Any]]:
    """The entries of the log's lines; a line that is not one (cut short) is skipped."""
    entries = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            entries.append(value)
    return entries
