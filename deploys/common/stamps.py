"""Where the deploy keeps its own state on the target, and the names of what is there."""

from __future__ import annotations

STATE_DIR = "/var/lib/egograph-deploy"
"""root-only; never a service user's HOME (``/var/lib/<user>``)."""

STARTED_SUFFIX = ".started.json"
"""``<unit>.started.json``: what the unit last started healthy with (unit and env digests,
the commit)."""
RELEASE_MARKER = "release.rolled-back.json"
"""The one marker of the last rolled-back release: the commit that failed, the service that
failed, the commit restored, when. Later runs refuse that commit (unless told to retry it);
the next release that comes up healthy removes it."""
VENV_SNAPSHOT = ".venv.rollback"
"""``<repo_path>/.venv.rollback``: the environment of the last good release, copied by the
first sync after it (a later sync keeps it) and dropped once every service of a new release
is healthy."""
AUDIT_LOG = "audit.jsonl"
"""The audit log: one JSON line per run that changed something or failed (written by the
controller's end of the run, ``deploys.audit``); append-only, 0600."""
RELEASES = "releases.json"
"""The release history: the commits released healthy, newest last, each ``{"commit",
"at"}``, the last ``release_keep`` of them (``deploys.services.history``); 0600."""
RELEASE_REF_PREFIX = "refs/egograph/releases/"
"""``refs/egograph/releases/<commit>`` in the app's clone: one per commit in the history,
so a fetch, a force-push upstream or ``git gc`` cannot lose a commit a rollback may need."""
GOOD_SUFFIX = ".good"
"""``<unit>.good/``: copies of the unit and env file of the last healthy release."""


def started_stamp(unit: str, state_dir: str = STATE_DIR) -> str:
    return f"{state_dir}/{unit}{STARTED_SUFFIX}"


def release_marker(state_dir: str = STATE_DIR) -> str:
    return f"{state_dir}/{RELEASE_MARKER}"


def release_history(state_dir: str = STATE_DIR) -> str:
    return f"{state_dir}/{RELEASES}"


def good_copies(unit: str, state_dir: str = STATE_DIR) -> str:
    return f"{state_dir}/{unit}{GOOD_SUFFIX}"


def audit_log(state_dir: str = STATE_DIR) -> str:
    return f"{state_dir}/{AUDIT_LOG}"
