"""The app repository's settings (runbook §3, §7)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from ..common.checks import (
    GIT_REF,
    REPO_URL,
    is_abs_path,
    is_bool,
    matches,
)
from ..common.setting import setting


@dataclass(frozen=True)
class RepoSettings:
    """The app repository and its checkout (runbook §3, §7)."""

    repo_url: str = setting(
        "https://github.com/endo-ava/ego-graph",
        form="a git URL (https://, ssh://, git://, file:// or user@host:path)",
        doc="Where the app is cloned from",
        check=matches(REPO_URL),
    )
    repo_branch: str = setting(
        "main",
        form="a branch name, or a 40-hex commit to pin",
        doc="The ref the checkout follows",
        check=matches(GIT_REF),
    )
    repo_path: str = setting(
        "/opt/egograph/repo",
        form="an absolute path",
        doc="Checkout location (uv workspace root)",
        check=is_abs_path,
    )
    repo_discard_local_changes: bool = setting(
        False,
        form="True or False",
        doc="Allow the deploy to throw away uncommitted changes to tracked files on the server "
        "(the runbook's `git reset --hard`). Off: the run stops and lists them",
        check=is_bool,
    )

    @property
    def venv_python(self) -> str:
        """The app's environment's Python (``uv sync`` makes ``<repo_path>/.venv``)."""
        return f"{self.repo_path}/.venv/bin/python"

    @property
    def data_dir(self) -> str:
        """Where the app writes (see ``app_data_dir``)."""
        return app_data_dir(self.repo_path)


def app_data_dir(repo_path: str) -> str:
    """Where the app writes: next to the checkout, as upstream's egograph_paths.py resolves
    it (``<repo_path>/../data``: /opt/egograph/data with the runbook's path)."""
    return str(PurePosixPath(repo_path).parent / "data")
