"""Shared fixtures: the sandbox (host network and services) and fresh containers."""

from __future__ import annotations

import itertools
import os
import shutil

# This session's own app repository in the sandbox (see tests.sandbox.app.site.APP_REPO); set
# before tests.sandbox.api (and so app.site) is imported.
os.environ.setdefault("EGOGRAPH_SANDBOX_APP", f"egograph-tests-{os.getpid()}")
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.api import (
    APP_REPO,
    GIT_ROOT,
    Container,
    container,
    prepare_host,
    publish_app,
    require_root_linux,
    work_tree,
    write_secret_env,
)


def e2e_required() -> bool:
    """CI (which sets CI=true) and EGOGRAPH_REQUIRE_E2E=1 demand the e2e tier: a test that
    cannot run there fails instead of skipping."""
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return ci or os.environ.get("EGOGRAPH_REQUIRE_E2E") == "1"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[None]:
    """Host side of the sandbox; where it cannot run, skipped with the reason, or failed
    when the e2e tier is required (see ``e2e_required``)."""
    reason = require_root_linux()
    if reason and e2e_required():
        pytest.fail(f"the e2e tests must run here (CI or EGOGRAPH_REQUIRE_E2E=1), but {reason}")
    if reason:
        pytest.skip(reason)
    prepare_host()
    publish_app()
    yield
    shutil.rmtree(GIT_ROOT / APP_REPO, ignore_errors=True)
    shutil.rmtree(work_tree(), ignore_errors=True)


_counter = itertools.count()


@pytest.fixture
def new_container(sandbox: None) -> Iterator[Callable[..., Container]]:
    """Factory for fresh, booted containers; all destroyed after the test. The app
    repository is reset to the pristine fixture first: an earlier test may have left a
    broken release on it."""
    publish_app("fixture")
    made: list[Container] = []

    def make(*, tun: bool = True, docker: bool = False) -> Container:
        c = container(f"t{os.getpid() % 1000}-{next(_counter)}", tun=tun, docker=docker)
        made.append(c)
        c.start()
        return c

    yield make
    for c in made:
        c.destroy()


@pytest.fixture
def secret_env(tmp_path: Path, sandbox: None) -> Path:
    return write_secret_env(f"backend-{tmp_path.name}")


# --- how many e2e tests ran: printed at the end, and no silent skip where they are required
_E2E_OUTCOMES: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": []}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "e2e" not in report.keywords:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _E2E_OUTCOMES[report.outcome].append(report.nodeid)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    ran = len(_E2E_OUTCOMES["passed"]) + len(_E2E_OUTCOMES["failed"])
    skipped = _E2E_OUTCOMES["skipped"]
    terminalreporter.write_line(
        f"e2e: {ran} ran ({len(_E2E_OUTCOMES['passed'])} passed, "
        f"{len(_E2E_OUTCOMES['failed'])} failed), {len(skipped)} skipped"
        + (" -- NOT ALLOWED: the e2e tier is required here" if skipped and e2e_required() else ""),
        bold=True,
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _E2E_OUTCOMES["skipped"] and e2e_required() and session.exitstatus == 0:
        session.exitstatus = 1
