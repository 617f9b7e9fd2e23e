"""deploys/proxmox/tasks.py against the PVE API emulator: a task's end, its warnings, its
error with the log, the wait's timeout, the UPID."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from deploys.proxmox.client import PveClient
from deploys.proxmox.errors import PveTaskError, PveTaskTimeout
from deploys.proxmox.tasks import parse_upid, task_status, wait_task
from tests.sandbox.pve.emulator import PveEmulator


def test_task_ok(client: PveClient, create_ct: Callable[..., str]) -> None:
    result = wait_task(client, create_ct(client, 140), timeout=10)
    assert (result.exitstatus, result.warnings) == ("OK", [])
    result = wait_task(client, client.start("pve", 140), timeout=10)
    assert result.exitstatus == "OK"
    assert client.find_container(vmid=140) is not None
    assert client.find_container(hostname="ct140").status == "running"  # type: ignore[union-attr]


def test_task_warnings_returns_warning_lines(
    client: PveClient, create_ct: Callable[..., str]
) -> None:
    upid = create_ct(client, 141, features=None)  # ubuntu 24.04 without nesting
    result = wait_task(client, upid, timeout=10)
    assert result.exitstatus == "WARNINGS: 1"
    assert result.warnings == ["WARN: Systemd 255 detected. You may need to enable nesting."]


def test_task_error_carries_exitstatus_and_log(
    emulator: PveEmulator, client: PveClient, create_ct: Callable[..., str]
) -> None:
    emulator.inject_task_fault("vzcreate", fail="unable to create CT 142 - disk quota exceeded")
    upid = create_ct(client, 142)
    with pytest.raises(PveTaskError) as info:
        wait_task(client, upid, timeout=10)
    err = info.value
    assert err.exitstatus == "unable to create CT 142 - disk quota exceeded"
    assert err.log_lines[-1] == "TASK ERROR: unable to create CT 142 - disk quota exceeded"
    assert err.upid == upid and upid in str(err)
    assert client.find_container(vmid=142) is None  # config removed after a failed create


def test_task_timeout(
    emulator: PveEmulator, client: PveClient, create_ct: Callable[..., str]
) -> None:
    emulator.inject_task_fault("vzcreate", slow=5)
    upid = create_ct(client, 143)
    started = time.monotonic()
    with pytest.raises(PveTaskTimeout) as info:
        wait_task(client, upid, timeout=0.3)
    assert time.monotonic() - started < 2
    assert info.value.upid == upid
    client.delete(f"/nodes/pve/tasks/{upid}")  # stop it
    with pytest.raises(PveTaskError) as stopped:
        wait_task(client, upid, timeout=5)
    assert stopped.value.exitstatus == "received interrupt"


def test_parse_upid(client: PveClient, creds: Any, create_ct: Callable[..., str]) -> None:
    upid = create_ct(client, 144)
    info = parse_upid(upid)
    assert info == {"node": "pve", "type": "vzcreate", "id": "144", "user": creds.DEPLOY_TOKEN}
    assert task_status(client, upid)["tokenid"] == "pyinfra"
    with pytest.raises(ValueError):
        parse_upid("UPID:nope")
