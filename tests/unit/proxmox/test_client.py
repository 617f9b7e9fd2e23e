"""PveClient against the PVE API emulator."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from deploys.proxmox.client import (
    InsecureTLSWarning,
    PveAuthError,
    PveClient,
    PveError,
    PvePermissionError,
    PveTaskError,
    PveTaskTimeout,
    PveTLSError,
    normalize_fingerprint,
    parse_upid,
    to_wire,
)
from tests.sandbox.pve.emulator import PveEmulator

# constants duplicated from conftest (test modules must not import each other)
ROOT_PASSWORD = "root-secret-pw"
DEPLOY_TOKEN = "deploy@pve!pyinfra"
DEPLOY_SECRET = "5f2c8b1e-2b7a-4d2e-9c55-0c6a1a0f9d11"
AUDIT_TOKEN = "audit@pve!ro"
AUDIT_SECRET = "a0d1e2f3-0000-4000-8000-000000000001"
UBUNTU = "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
NET0 = "name=eth0,bridge=vmbr0,ip=dhcp"


def create(client: PveClient, vmid: int, **extra: Any) -> str:
    params = {
        "vmid": vmid,
        "ostemplate": UBUNTU,
        "hostname": f"ct{vmid}",
        "rootfs": "local-lvm:8",
        "net0": NET0,
        "unprivileged": True,
        "features": "nesting=1",
    }
    params.update(extra)
    return client.create_container("pve", params)


# --------------------------------------------------------------------------- auth


def test_constants_match_conftest(creds: Any) -> None:
    assert (ROOT_PASSWORD, DEPLOY_TOKEN, DEPLOY_SECRET, AUDIT_TOKEN, AUDIT_SECRET, UBUNTU) == (
        creds.ROOT_PASSWORD,
        creds.DEPLOY_TOKEN,
        creds.DEPLOY_SECRET,
        creds.AUDIT_TOKEN,
        creds.AUDIT_SECRET,
        creds.UBUNTU,
    )


def test_token_auth_ok(client: PveClient) -> None:
    version = client.version()
    assert version["release"] == "9.1"
    assert client.nodes()[0]["node"] == "pve"


def test_bad_token_is_401_and_secret_never_shown(
    client_factory: Callable[..., PveClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = client_factory(token_id=DEPLOY_TOKEN, token_secret="wrong-secret-value")
    with pytest.raises(PveAuthError) as info:
        bad.version()
    err = info.value
    assert err.status_code == 401
    assert err.reason == "Authentication failed!"
    for text in (str(err), repr(err), repr(bad), str(bad), caplog.text):
        assert "wrong-secret-value" not in text
    good = client_factory()
    assert DEPLOY_SECRET not in repr(good) and DEPLOY_SECRET not in str(vars(good))


def test_missing_privilege_is_403_naming_it(client_factory: Callable[..., PveClient]) -> None:
    auditor = client_factory(token_id=AUDIT_TOKEN, token_secret=AUDIT_SECRET)
    with pytest.raises(PvePermissionError) as info:
        auditor.start("pve", 120)
    assert info.value.status_code == 403
    assert info.value.reason == "Permission check failed (/vms/120, VM.PowerMgmt)"
    assert "VM.PowerMgmt" in str(info.value)
    # create's VM.Allocate gate names nothing (PERMISSIONS.md §2.8 step 7)
    with pytest.raises(PvePermissionError) as info:
        create(auditor, 120)
    assert (info.value.status_code, info.value.reason) == (403, "Permission check failed")


def test_ticket_login_and_csrf(
    emulator: PveEmulator, client_factory: Callable[..., PveClient]
) -> None:
    root = client_factory(user="root@pam", password=ROOT_PASSWORD)
    assert ROOT_PASSWORD not in repr(root)
    # root@pam (ticket) may set dev0; non-GET calls carry the CSRF token
    upid = create(root, 130, dev0="/dev/net/tun")
    root.wait_task(upid, timeout=10)
    root.update_config("pve", 130, {"onboot": True})
    assert root.container_config("pve", 130)["onboot"] == 1
    # the same ticket without CSRF header is refused with 401
    ticket, _csrf = root._api._store["session"].auth.get_tokens()
    resp = requests.put(
        emulator.api_url + "/nodes/pve/lxc/130/config",
        data={"onboot": 0},
        cookies={"PVEAuthCookie": ticket},
        verify=str(emulator.ca_path),
        timeout=10,
    )
    assert (resp.status_code, resp.reason) == (401, "Permission denied - invalid csrf token")
    assert resp.content == b""


def test_bad_password_is_auth_error(client_factory: Callable[..., PveClient]) -> None:
    with pytest.raises(PveAuthError) as info:
        client_factory(user="root@pam", password="nope-nope")
    assert info.value.reason == "authentication failure"


# --------------------------------------------------------------------------- TLS


def test_configured_ca_wins_over_requests_ca_bundle(
    emulator: PveEmulator,
    client_factory: Callable[..., PveClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_BUNDLE)
    monkeypatch.setenv("CURL_CA_BUNDLE", SYSTEM_BUNDLE)
    # the trap: a session-level CA is replaced by the environment's bundle
    trap = requests.Session()
    trap.verify = str(emulator.ca_path)
    with pytest.raises(requests.exceptions.SSLError):
        trap.get(emulator.api_url + "/version", timeout=10)
    # PveClient passes verify per request, so the configured CA is used
    assert client_factory().version()["release"] == "9.1"


def test_system_trust_rejects_emulator_cert(
    client_factory: Callable[..., PveClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_BUNDLE)
    untrusted = client_factory(ca_bundle=None)
    with pytest.raises(PveTLSError) as info:
        untrusted.version()
    assert info.value.status_code == 0
    assert "CERTIFICATE_VERIFY_FAILED" in info.value.reason


def test_wrong_ca_bundle_fails(client_factory: Callable[..., PveClient]) -> None:
    with pytest.raises(PveTLSError):
        client_factory(ca_bundle=SYSTEM_BUNDLE).version()


def test_fingerprint_pinning(
    emulator: PveEmulator, client_factory: Callable[..., PveClient]
) -> None:
    pinned = client_factory(ca_bundle=None, fingerprint=emulator.fingerprint)
    assert pinned.version()["release"] == "9.1"
    both = client_factory(fingerprint=emulator.fingerprint.lower().replace(":", ""))
    assert both.version()["release"] == "9.1"
    wrong = client_factory(ca_bundle=None, fingerprint="AB:" * 31 + "CD")
    with pytest.raises(PveTLSError) as info:
        wrong.version()
    assert "Fingerprints did not match" in info.value.reason


def test_fingerprint_pinning_applies_to_ticket_login(
    client_factory: Callable[..., PveClient],
) -> None:
    with pytest.raises(PveTLSError):
        client_factory(
            user="root@pam", password=ROOT_PASSWORD, ca_bundle=None, fingerprint="00" * 32
        )


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_insecure_warns_every_time(
    client_factory: Callable[..., PveClient], caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(2):
        with pytest.warns(InsecureTLSWarning):
            insecure = client_factory(ca_bundle=None, insecure=True)
        assert insecure.version()["release"] == "9.1"
    assert caplog.text.count("TLS verification is disabled") == 2


# --------------------------------------------------------------------------- tasks


def test_task_ok(client: PveClient) -> None:
    result = client.wait_task(create(client, 140), timeout=10)
    assert (result.exitstatus, result.warnings) == ("OK", [])
    result = client.wait_task(client.start("pve", 140), timeout=10)
    assert result.exitstatus == "OK"
    assert client.find_container(vmid=140) is not None
    assert client.find_container(hostname="ct140").status == "running"  # type: ignore[union-attr]


def test_task_warnings_returns_warning_lines(client: PveClient) -> None:
    upid = create(client, 141, features=None)  # ubuntu 24.04 without nesting
    result = client.wait_task(upid, timeout=10)
    assert result.exitstatus == "WARNINGS: 1"
    assert result.warnings == ["WARN: Systemd 255 detected. You may need to enable nesting."]


def test_task_error_carries_exitstatus_and_log(emulator: PveEmulator, client: PveClient) -> None:
    emulator.inject_task_fault("vzcreate", fail="unable to create CT 142 - disk quota exceeded")
    upid = create(client, 142)
    with pytest.raises(PveTaskError) as info:
        client.wait_task(upid, timeout=10)
    err = info.value
    assert err.exitstatus == "unable to create CT 142 - disk quota exceeded"
    assert err.log_lines[-1] == "TASK ERROR: unable to create CT 142 - disk quota exceeded"
    assert err.upid == upid and upid in str(err)
    assert client.find_container(vmid=142) is None  # config removed after a failed create


def test_task_timeout(emulator: PveEmulator, client: PveClient) -> None:
    emulator.inject_task_fault("vzcreate", slow=5)
    upid = create(client, 143)
    started = time.monotonic()
    with pytest.raises(PveTaskTimeout) as info:
        client.wait_task(upid, timeout=0.3)
    assert time.monotonic() - started < 2
    assert info.value.upid == upid
    client.delete(f"/nodes/pve/tasks/{upid}")  # stop it
    with pytest.raises(PveTaskError) as stopped:
        client.wait_task(upid, timeout=5)
    assert stopped.value.exitstatus == "received interrupt"


def test_parse_upid(client: PveClient) -> None:
    upid = create(client, 144)
    info = parse_upid(upid)
    assert info == {"node": "pve", "type": "vzcreate", "id": "144", "user": DEPLOY_TOKEN}
    assert client.task_status(upid)["tokenid"] == "pyinfra"
    with pytest.raises(ValueError):
        parse_upid("UPID:nope")


# --------------------------------------------------------------------------- transport


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


def test_booleans_sent_as_1_0(emulator: PveEmulator, client: PveClient) -> None:
    assert to_wire({"a": True, "b": False, "c": None, "d": "x"}) == {"a": 1, "b": 0, "d": "x"}
    client.wait_task(create(client, 150), timeout=10)
    client.update_config("pve", 150, {"onboot": True, "protection": False})
    conf = client.container_config("pve", 150)
    assert conf["onboot"] == 1 and conf["protection"] == 0
    # what requests would send for a raw Python bool is refused by PVE (and the emulator)
    resp = requests.put(
        emulator.api_url + "/nodes/pve/lxc/150/config",
        data={"onboot": True},
        headers={"Authorization": f"PVEAPIToken={DEPLOY_TOKEN}={DEPLOY_SECRET}"},
        verify=str(emulator.ca_path),
        timeout=10,
    )
    assert resp.status_code == 400
    assert resp.json()["errors"] == {"onboot": "type check ('boolean') failed - got 'True'"}


def test_param_error_is_readable(client: PveClient) -> None:
    with pytest.raises(PveError) as info:
        create(client, 99, memory=8)
    err = info.value
    assert err.status_code == 400 and err.reason == "Parameter verification failed."
    assert err.errors["memory"] == "value must have a minimum value of 16"
    assert "memory: value must have a minimum value of 16" in str(err)
    assert "vmid: invalid format - value does not look like a valid VM ID" in str(err)


def test_500_reason(client: PveClient) -> None:
    client.wait_task(create(client, 160), timeout=10)
    with pytest.raises(PveError) as info:
        create(client, 160)
    assert (info.value.status_code, info.value.reason) == (
        500,
        "CT 160 already exists on node 'pve'",
    )


def test_convenience_calls(client: PveClient) -> None:
    assert client.next_id() == 100
    content = client.storage_content("pve", "local", "vztmpl")
    assert content[0]["volid"] == UBUNTU
    templates = [a["template"] for a in client.aplinfo("pve")]
    assert "ubuntu-24.04-standard_24.04-2_amd64.tar.zst" in templates
    assert any(t.startswith("debian-13-standard") for t in templates)
    debian = next(t for t in templates if t.startswith("debian-13"))
    client.wait_task(client.download_template("pve", "local", debian), timeout=10)
    volids = [c["volid"] for c in client.storage_content("pve", "local", "vztmpl")]
    assert f"local:vztmpl/{debian}" in volids
    client.wait_task(create(client, 170), timeout=10)
    assert client.interfaces("pve", 170) is None
    client.wait_task(client.start("pve", 170), timeout=10)
    names = [i["name"] for i in client.interfaces("pve", 170) or []]
    assert names == ["lo", "eth0"]
    assert client.container_status("pve", 170)["status"] == "running"
    client.wait_task(client.shutdown("pve", 170), timeout=10)
    client.wait_task(client.destroy("pve", 170), timeout=10)
    assert client.find_container(vmid=170) is None


def test_fingerprint_normalisation() -> None:
    fp = "AB" * 32
    assert normalize_fingerprint(fp) == ":".join(["ab"] * 32)
    with pytest.raises(ValueError):
        normalize_fingerprint("abcd")


def test_constructor_validation(emulator: PveEmulator) -> None:
    with pytest.raises(ValueError):
        PveClient(emulator.host, ca_bundle=emulator.ca_path)
    with pytest.raises(ValueError):
        PveClient(emulator.host, token_id="nobang@pve", token_secret="x")
    with pytest.raises(ValueError):
        PveClient(emulator.host, token_id=DEPLOY_TOKEN, token_secret="x", ca_bundle="/nonexistent")
    assert os.path.exists(emulator.ca_path)
