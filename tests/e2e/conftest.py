"""Fixtures of the e2e tests that several files share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.sandbox.pve.deploy_site import DeploySite, empty_nodes


@pytest.fixture
def empty_node(
    sandbox: None, secret_env: Path, tmp_path: Path
) -> Iterator[Callable[..., DeploySite]]:
    """Factory: an empty emulated Proxmox node and its sshd (``empty_node(version="8.4")``
    for the older API), torn down after the test."""
    with empty_nodes(secret_env, tmp_path) as make:
        yield make
