"""Where the deploy keeps its own state on the target, and the names of what is there."""

from __future__ import annotations

STATE_DIR = "/var/lib/egograph-deploy"
"""root-only; never a service user's HOME (``/var/lib/<user>``)."""

STARTED_SUFFIX = ".started.json"
"""``<unit>.started.json``: what the unit last started healthy with (unit and env digests,
the commit)."""
ROLLED_BACK_SUFFIX = ".rolled-back.json"
"""``<unit>.rolled-back.json``: the release that failed and the one restored."""
VENV_SNAPSHOT = ".venv.rollback"
"""``<repo_path>/.venv.rollback``: the environment as it was before a sync, until the release
is healthy."""
GOOD_SUFFIX = ".good"
"""``<unit>.good/``: copies of the unit and env file of the last healthy release."""


def started_stamp(unit: str, state_dir: str = STATE_DIR) -> str:
    return f"{state_dir}/{unit}{STARTED_SUFFIX}"


def rolled_back_marker(unit: str, state_dir: str = STATE_DIR) -> str:
    return f"{state_dir}/{unit}{ROLLED_BACK_SUFFIX}"


def good_copies(unit: str, state_dir: str = STATE_DIR) -> str:
    return f"{state_dir}/{unit}{GOOD_SUFFIX}"
