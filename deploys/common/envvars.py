"""Environment variables the deploy reads, kept free of imports so that command-line tools
can name them without loading pyinfra."""

REASONS_FILE_ENV = "EGOGRAPH_REASONS_FILE"
"""Set by ``egodeploy drift``: operations append why they would change to this file."""

NOT_APPLIED = "not_applied"
"""The ``kind`` of a reasons-file entry for a difference the deploy does not change (the
drift report lists it apart); the other entries are ``change``."""

ROLLBACK_TO_ENV = "EGOGRAPH_ROLLBACK_TO"
"""Set by ``egodeploy rollback --to COMMIT``: the release ``deploys/rollback.py`` goes to
(unset: the one before the current release)."""

ROLLBACK_BY_ENV = "EGOGRAPH_ROLLBACK_BY"
"""Set by ``egodeploy rollback``: who asked (``user@host``), for the release marker."""
