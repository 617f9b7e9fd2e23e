"""Tests that validate settings create their secret files (env sources, key files)
owner-only, as a user must: validation refuses a secret file open to group or others (see
``deploys.common.secrets.open_to_others``; the cases in tests/unit/test_settings.py set wider
modes on purpose). Other tests (e.g. building .deb packages) keep the usual umask."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = Path(__file__).parent
_OWNER_ONLY = (
    _HERE / "test_settings.py",
    _HERE / "services",
    _HERE / "duckdb",
    _HERE / "proxmox",
    _HERE / "tailscale" / "test_settings.py",
)


@pytest.fixture(autouse=True)
def _owner_only_files(request: pytest.FixtureRequest) -> Iterator[None]:
    path = Path(str(request.node.path))
    if not any(path == p or p in path.parents for p in _OWNER_ONLY):
        yield
        return
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)
