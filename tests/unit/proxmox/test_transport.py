"""deploys/proxmox/transport.py, through PveClient against the PVE API emulator: token and
ticket logins (the secret never shown), TLS verified against a CA or a pinned fingerprint."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from deploys.proxmox.client import PveClient
from deploys.proxmox.errors import PveAuthError, PvePermissionError, PveTLSError
from deploys.proxmox.tasks import wait_task
from deploys.proxmox.transport import InsecureTLSWarning, normalize_fingerprint
from tests.sandbox.pve.emulator import PveEmulator

# constants duplicated from conftest (test modules must not import each other)
ROOT_PASSWORD = "root-secret-pw"
DEPLOY_TOKEN = "deploy@pve!pyinfra"
DEPLOY_SECRET = "5f2c8b1e-2b7a-4d2e-9c55-0c6a1a0f9d11"
AUDIT_TOKEN = "audit@pve!ro"
AUDIT_SECRET = "a0d1e2f3-0000-4000-8000-000000000001"
UBUNTU = "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


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


def test_missing_privilege_is_403_naming_it(
    client_factory: Callable[..., PveClient], create_ct: Callable[..., str]
) -> None:
    auditor = client_factory(token_id=AUDIT_TOKEN, token_secret=AUDIT_SECRET)
    with pytest.raises(PvePermissionError) as info:
        auditor.start("pve", 120)
    assert info.value.status_code == 403
    assert info.value.reason == "Permission check failed (/vms/120, VM.PowerMgmt)"
    assert "VM.PowerMgmt" in str(info.value)
    # create's VM.Allocate gate names nothing (PERMISSIONS.md §2.8 step 7)
    with pytest.raises(PvePermissionError) as info:
        create_ct(auditor, 120)
    assert (info.value.status_code, info.value.reason) == (403, "Permission check failed")


def test_ticket_login_and_csrf(
    emulator: PveEmulator, client_factory: Callable[..., PveClient], create_ct: Callable[..., str]
) -> None:
    root = client_factory(user="root@pam", password=ROOT_PASSWORD)
    assert ROOT_PASSWORD not in repr(root)
    # root@pam (ticket) may set dev0; non-GET calls carry the CSRF token
    upid = create_ct(root, 130, dev0="/dev/net/tun")
    wait_task(root, upid, timeout=10)
    root.update_config("pve", 130, {"onboot": True})
    assert root.container_config("pve", 130)["onboot"] == 1
    # the same ticket without CSRF header is refused with 401
    ticket, _csrf = root.get_tokens()
    assert ticket is not None
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


def test_fingerprint_normalisation() -> None:
    fp = "AB" * 32
    assert normalize_fingerprint(fp) == ":".join(["ab"] * 32)
    with pytest.raises(ValueError):
        normalize_fingerprint("abcd")


def test_only_proxmoxers_public_names_are_used() -> None:
    # proxmoxer's private attributes (``_store``, ``_backend``) are nobody's contract;
    # transport.api_root is the one place that builds on proxmoxer past its documented API
    package = Path(__file__).resolve().parents[3] / "deploys" / "proxmox"
    for source in package.glob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert not re.search(r"\._(store|backend)\b", text), source.name
