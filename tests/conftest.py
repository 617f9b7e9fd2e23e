"""Shared fixtures: the sandbox (host network and services) and fresh containers."""

from __future__ import annotations

import itertools
import os
import shutil

# This session's own app repository in the sandbox (see tests.sandbox.site.APP_REPO); set
# before tests.sandbox.site is imported.
os.environ.setdefault("EGOGRAPH_SANDBOX_APP", f"egograph-tests-{os.getpid()}")
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.sandbox import container as sandbox_container
from tests.sandbox import host, paths, site
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
    shutil.rmtree(paths.GIT_ROOT / site.APP_REPO, ignore_errors=True)
    shutil.rmtree(site.work_tree(), ignore_errors=True)


_counter = itertools.count()


@pytest.fixture
def new_container(sandbox: None) -> Iterator[Callable[..., Container]]:
    """Factory for fresh, booted containers; all destroyed after the test. The app
    repository is reset to the pristine fixture first: an earlier test may have left a
    broken release on it."""
    site.publish_app("fixture")
    made: list[Container] = []

    def make(*, tun: bool = True, docker: bool = False) -> Container:
        c = sandbox_container.get(f"t{os.getpid() % 1000}-{next(_counter)}", tun=tun, docker=docker)
        made.append(c)
        c.start()
        return c

    yield make
    for c in made:
        c.destroy()


@pytest.fixture
def secret_env(tmp_path: Path, sandbox: None) -> Path:
    return site.write_secret_env(f"backend-{tmp_path.name}")
