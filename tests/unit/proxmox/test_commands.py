"""deploys/proxmox/commands.py: a task wait says how it goes, behind the host's prefix."""

from __future__ import annotations

import functools
import logging
from types import SimpleNamespace

import pytest
from pyinfra.context import ctx_host

from deploys.proxmox import commands
from deploys.proxmox.tasks import wait_task
from tests.unit.fakes import FakeHost
from tests.unit.proxmox.test_tasks import FakeTaskApi


def test_a_long_wait_logs_progress_lines_through_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = FakeTaskApi(
        [(1.0, "downloading https://user:pw@mirror.example/t.tar.zst to /var/lib/vz/t")],
        ends=9,
    )
    monkeypatch.setattr(
        commands, "wait_task", functools.partial(wait_task, clock=api.clock, sleep=api.sleep)
    )
    ct = SimpleNamespace(api=api, pve=SimpleNamespace(task_timeout=60))
    fake = FakeHost({})
    with ctx_host.use(fake):
        commands.wait(ct, api.UPID, "download t.tar.zst")  # type: ignore[arg-type]
    assert fake.logs == [
        "download t.tar.zst: 4 s, downloading https://***@mirror.example/t.tar.zst to "
        "/var/lib/vz/t",
        "download t.tar.zst: 8 s, downloading https://***@mirror.example/t.tar.zst to "
        "/var/lib/vz/t",
    ]


def test_outside_a_host_the_line_goes_to_pyinfras_logger() -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    pyinfra_logger = logging.getLogger("pyinfra")
    level = pyinfra_logger.level
    pyinfra_logger.addHandler(handler)
    pyinfra_logger.setLevel(logging.INFO)
    try:
        with ctx_host.use(None):  # no host's operation running (another test may leave one)
            commands.say("CT 100 start: 4 s")
    finally:
        pyinfra_logger.removeHandler(handler)
        pyinfra_logger.setLevel(level)
    assert [(r.levelno, r.getMessage()) for r in records] == [(logging.INFO, "CT 100 start: 4 s")]
