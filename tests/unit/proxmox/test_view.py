"""deploys/proxmox/view.py: the run's one read of the container, counted in the emulator's
request log, on its own and as the stage uses it."""

from __future__ import annotations

import collections
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from deploys.proxmox import access
from deploys.proxmox.access import Pve
from deploys.proxmox.view import ContainerView
from tests.sandbox.pve.emulator import PveEmulator
from tests.unit.proxmox.stage import run_stage, stage_settings

CONTAINER_READS = ("/cluster/resources", "/lxc/100/config", "/lxc/100/status/current",
                   "/lxc/100/pending")  # fmt: skip


@pytest.fixture(autouse=True)
def _ssh_ports_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access, "ssh_port_open", lambda *a, **k: True)


def settings(emu: PveEmulator, tmp_path: Path, creds: Any) -> Any:
    return stage_settings(emu, tmp_path, token=creds.DEPLOY_TOKEN, secret=creds.DEPLOY_SECRET)


def reads(emu: PveEmulator) -> collections.Counter[str]:
    """GETs by path, without the query and the ``/api2/json/nodes/pve`` prefix."""
    paths = [p.split("?")[0].removeprefix("/api2/json") for m, p, _ in emu.request_log]
    return collections.Counter(p.removeprefix("/nodes/pve") for p in paths)


class Run:
    """What ContainerView asks of pyinfra's state: executing, and whether it stopped to ask."""

    def __init__(self, *, interactive: bool) -> None:
        self.is_executing = False
        self.interactive = interactive

    def should_check_for_changes(self) -> bool:
        return self.interactive


def view(emu: PveEmulator, tmp_path: Path, creds: Any, run: Run) -> ContainerView:
    node = SimpleNamespace(state=run)
    return ContainerView(Pve.from_settings(settings(emu, tmp_path, creds)), node)  # type: ignore[arg-type]


def test_each_part_is_read_once_until_a_change(
    emulator: PveEmulator, tmp_path: Path, creds: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert run_stage(settings(emulator, tmp_path, creds), caplog)[0]
    run = Run(interactive=True)
    ct = view(emulator, tmp_path, creds, run)
    emulator.request_log.clear()
    for _ in range(3):
        assert ct.ref() is not None and ct.status() == "running"
        assert ct.config()["hostname"] == "egograph-prod" and ct.pending() == []
    assert [reads(emulator)[p] for p in CONTAINER_READS] == [1, 1, 1, 1]
    ct.changing()  # preparing changes nothing: the read stays
    ct.ref()
    assert reads(emulator)["/cluster/resources"] == 1

    # an interactive run stopped to ask: the first read while executing is a new one
    run.is_executing = True
    ct.ref()
    ct.ref()
    assert reads(emulator)["/cluster/resources"] == 2
    ct.changing()  # an operation yields a change: what follows is read again
    assert ct.status() == "running"
    assert reads(emulator)["/cluster/resources"] == 3
    assert reads(emulator)["/lxc/100/status/current"] == 2
    # what a caller does with a value does not reach the cache
    ct.config()["hostname"] = "changed"
    assert ct.config()["hostname"] == "egograph-prod"


def test_with_yes_what_was_read_before_executing_is_used(
    emulator: PveEmulator, tmp_path: Path, creds: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert run_stage(settings(emulator, tmp_path, creds), caplog)[0]
    run = Run(interactive=False)
    ct = view(emulator, tmp_path, creds, run)
    emulator.request_log.clear()
    ct.config()
    run.is_executing = True
    ct.config()
    assert reads(emulator)["/cluster/resources"] == 1
    assert reads(emulator)["/lxc/100/config"] == 1


def test_a_no_op_run_reads_the_container_once(
    emulator: PveEmulator, tmp_path: Path, creds: Any, caplog: pytest.LogCaptureFixture
) -> None:
    s = settings(emulator, tmp_path, creds)
    assert run_stage(s, caplog, yes=True)[0]  # from nothing: create, start
    emulator.request_log.clear()
    ok, said = run_stage(s, caplog, yes=True)
    assert ok, said
    # the privilege check and the four operations share one read
    assert reads(emulator) == {
        "/nodes": 1,  # pve_node '': the cluster's only node
        "/access/permissions": 1,
        "/storage/local/content": 1,
        **{p: 1 for p in CONTAINER_READS},
    }
    # an interactive run (decides every operation, asks, executes): once more
    emulator.request_log.clear()
    assert run_stage(s, caplog)[0]
    assert [reads(emulator)[p] for p in CONTAINER_READS] == [2, 2, 2, 2]
    assert reads(emulator)["/access/permissions"] == 1
