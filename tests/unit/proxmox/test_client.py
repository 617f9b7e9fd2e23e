"""PveClient against the PVE API emulator: retries, the wire format, PVE's error texts, the
calls the deploy makes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from deploys.proxmox.client import PveClient, to_wire
from deploys.proxmox.errors import PveError
from deploys.proxmox.tasks import wait_task
from tests.sandbox.pve.emulator import PveEmulator


def test_596_is_retried(emulator: PveEmulator, client: PveClient) -> None:
    emulator.inject_http_error(596, count=2)
    before = len(emulator.request_log)
    assert client.version()["release"] == "9.1"
    statuses = [s for _m, _p, s in emulator.request_log[before:]]
    assert statuses == [596, 596, 200]


def test_595_596_retries_are_bounded(
    emulator: PveEmulator, client_factory: Callable[..., PveClient]
) -> None:
    emulator.inject_http_error(596, count=10)
    limited = client_factory(retries=2)
    with pytest.raises(PveError) as info:
        limited.version()
    assert (info.value.status_code, info.value.reason) == (596, "Connection timed out")
    emulator.clear_faults()
    emulator.inject_http_error(595, count=10)
    by_time = client_factory(retries=50, retry_backoff=0.05, retry_max_time=0.2)
    started = time.monotonic()
    with pytest.raises(PveError) as info:
        by_time.version()
    assert info.value.status_code == 595
    assert time.monotonic() - started < 1.0


def test_booleans_sent_as_1_0(
    emulator: PveEmulator, client: PveClient, create_ct: Callable[..., str], creds: Any
) -> None:
    assert to_wire({"a": True, "b": False, "c": None, "d": "x"}) == {"a": 1, "b": 0, "d": "x"}
    wait_task(client, create_ct(client, 150), timeout=10)
    client.update_config("pve", 150, {"onboot": True, "protection": False})
    conf = client.container_config("pve", 150)
    assert conf["onboot"] == 1 and conf["protection"] == 0
    # what requests would send for a raw Python bool is refused by PVE (and the emulator)
    resp = requests.put(
        emulator.api_url + "/nodes/pve/lxc/150/config",
        data={"onboot": True},
        headers={"Authorization": f"PVEAPIToken={creds.DEPLOY_TOKEN}={creds.DEPLOY_SECRET}"},
        verify=str(emulator.ca_path),
        timeout=10,
    )
    assert resp.status_code == 400
    assert resp.json()["errors"] == {"onboot": "type check ('boolean') failed - got 'True'"}


def test_param_error_is_readable(client: PveClient, create_ct: Callable[..., str]) -> None:
    with pytest.raises(PveError) as info:
        create_ct(client, 99, memory=8)
    err = info.value
    assert err.status_code == 400 and err.reason == "Parameter verification failed."
    assert err.errors["memory"] == "value must have a minimum value of 16"
    assert "memory: value must have a minimum value of 16" in str(err)
    assert "vmid: invalid format - value does not look like a valid VM ID" in str(err)


def test_500_reason(client: PveClient, create_ct: Callable[..., str]) -> None:
    wait_task(client, create_ct(client, 160), timeout=10)
    with pytest.raises(PveError) as info:
        create_ct(client, 160)
    assert (info.value.status_code, info.value.reason) == (
        500,
        "CT 160 already exists on node 'pve'",
    )


def test_convenience_calls(client: PveClient, create_ct: Callable[..., str], creds: Any) -> None:
    assert client.next_id() == 100
    content = client.storage_content("pve", "local", "vztmpl")
    assert content[0]["volid"] == creds.UBUNTU
    templates = [a["template"] for a in client.aplinfo("pve")]
    assert "ubuntu-24.04-standard_24.04-2_amd64.tar.zst" in templates
    assert any(t.startswith("debian-13-standard") for t in templates)
    debian = next(t for t in templates if t.startswith("debian-13"))
    wait_task(client, client.download_template("pve", "local", debian), timeout=10)
    volids = [c["volid"] for c in client.storage_content("pve", "local", "vztmpl")]
    assert f"local:vztmpl/{debian}" in volids
    wait_task(client, create_ct(client, 170), timeout=10)
    assert client.interfaces("pve", 170) is None
    wait_task(client, client.start("pve", 170), timeout=10)
    names = [i["name"] for i in client.interfaces("pve", 170) or []]
    assert names == ["lo", "eth0"]
    assert client.container_status("pve", 170)["status"] == "running"
    wait_task(client, client.shutdown("pve", 170), timeout=10)
    wait_task(client, client.destroy("pve", 170), timeout=10)
    assert client.find_container(vmid=170) is None


def test_constructor_validation(emulator: PveEmulator, creds: Any) -> None:
    with pytest.raises(ValueError):
        PveClient(emulator.host, ca_bundle=emulator.ca_path)
    with pytest.raises(ValueError):
        PveClient(emulator.host, token_id="nobang@pve", token_secret="x")
    with pytest.raises(ValueError):
        PveClient(
            emulator.host, token_id=creds.DEPLOY_TOKEN, token_secret="x", ca_bundle="/nonexistent"
        )
    assert os.path.exists(emulator.ca_path)
