"""Shared fixtures: the sandbox (host network and services) and fresh containers."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.sandbox import container as sandbox_container
from tests.sandbox import host, site
from tests.sandbox.container import Container


@pytest.fixture(scope="session")
def sandbox() -> Iterator[None]:
    """Host side of the sandbox; skipped with the reason where it cannot run."""
    reason = host.require_root_linux()
    if reason:
        pytest.skip(reason)
    host.ensure_packages()
    host.ensure_network()
    host.ensure_services()
    site.publish_app()
    yield


_counter = itertools.count()


@pytest.fixture
def new_container(sandbox: None) -> Iterator[Callable[..., Container]]:
    """Factory for fresh, booted containers; all destroyed after the test."""
    made: list[Container] = []

    def make(*, tun: bool = True) -> Container:
        c = sandbox_container.get(f"t{os.getpid() % 1000}-{next(_counter)}", tun=tun)
        made.append(c)
        c.start()
        return c

    yield make
    for c in made:
        c.destroy()


@pytest.fixture
def secret_env(tmp_path: Path, sandbox: None) -> Path:
    return site.write_secret_env(f"backend-{tmp_path.name}")
