"""The controller-side checks of ``egodeploy preflight``, and the settings validation that
stops a deploy on the same findings (one function decides both)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from deploys.inventory import ssh_key_problems
from deploys.preflight.checks import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    Check,
    controller_checks,
    exit_code,
    keyring_pin,
    private_key,
    render_text,
    secret_source,
    settings_check,
    tls_settings,
)
from deploys.settings import SettingsError, raw_defaults, validate

SECRET = "s3cret-value-never-shown"
PIN = "a" * 64


def owned(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def ca_file(path: Path) -> Path:
    """A real self-signed CA certificate in PEM (what pve-root-ca.pem is)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Proxmox Virtual Environment")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return owned(path, cert.public_bytes(serialization.Encoding.PEM).decode(), 0o644)


def private_key_file(path: Path, mode: int = 0o600) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    return owned(path, pem.decode(), mode)


def proxmox_values(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A whole valid Proxmox target's settings, every controller file in place."""
    values = raw_defaults()
    env = owned(tmp_path / "backend.env", f"API_KEY={SECRET}\n")
    pub = owned(tmp_path / "id.pub", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB test\n", 0o644)
    values.update(
        services=[dict(values["services"][0], env_source={"file": str(env)})],
        pve_host="pve.example",
        pve_secret_source={"file": str(owned(tmp_path / "token.secret", SECRET + "\n"))},
        pve_ca_bundle=str(ca_file(tmp_path / "pve-root-ca.pem")),
        pve_ssh_key=str(private_key_file(tmp_path / "node_key")),
        ct_ssh_public_keys=[str(pub)],
        tailscale_keyring_sha256=PIN,
        tailscale_authkey_source={"file": str(owned(tmp_path / "ts.key", "tskey-auth-x\n"))},
    )
    values.update(overrides)
    return values


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_a_good_target_passes_every_controller_check_and_validates(tmp_path: Path) -> None:
    values = proxmox_values(tmp_path)
    key = private_key_file(tmp_path / "ct_key")
    checks = controller_checks(values, {"ssh_key": str(key)})
    assert [(c.name, c.status) for c in checks] == [
        ("secret:pve_secret_source", PASS),
        ("secret:tailscale_authkey_source", PASS),
        ("secret:services[0].env_source", PASS),
        ("ssh_key:ssh_key", PASS),
        ("ssh_key:pve_ssh_key", PASS),
        ("ssh_key:ct_ssh_public_keys", PASS),
        ("tls:pve_ca_bundle", PASS),
        ("tailscale_keyring_pin", PASS),
    ]
    assert by_name(checks)["secret:pve_secret_source"].detail.endswith("(mode 0600)")
    assert (
        f"verified against {values['pve_ca_bundle']}" in by_name(checks)["tls:pve_ca_bundle"].detail
    )
    assert all(SECRET not in json.dumps(c.as_dict("t")) for c in checks)
    validate(values)
    assert ssh_key_problems({"ssh_key": str(key)}) == []
    assert exit_code({"t": checks}) == 0


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
@pytest.mark.parametrize("setting", ["pve_secret_source", "tailscale_authkey_source"])
def test_a_secret_file_open_to_others_fails_naming_the_setting_and_chmod_600(
    tmp_path: Path, setting: str, mode: int
) -> None:
    values = proxmox_values(tmp_path)
    path = Path(values[setting]["file"])
    path.chmod(mode)
    check = by_name(controller_checks(values, {}))[f"secret:{setting}"]
    assert check.status == FAIL and check.setting == setting
    assert f"(mode {mode:04o})" in check.detail and check.fix == f"chmod 600 {path}"
    assert SECRET not in check.detail + check.fix
    # the deploy refuses the same file, with the same words, before connecting
    with pytest.raises(SettingsError) as refused:
        validate(values)
    assert refused.value.errors == [f"{setting}: {open_detail(path, mode)}"]


def open_detail(path: Path, mode: int) -> str:
    return (
        f"file {str(path)!r} is open to group or others (mode {mode:04o}); expected a secret "
        f"file only its owner can read: chmod 600 {path}"
    )


def test_a_missing_secret_fails_and_the_tailscale_key_only_warns_unless_a_login_is_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TS_AUTHKEY", raising=False)
    monkeypatch.setenv("PVE_TOKEN_SECRET", SECRET)
    values = proxmox_values(
        tmp_path,
        pve_secret_source={"environ": "PVE_TOKEN_SECRET"},
        tailscale_authkey_source={"environ": "TS_AUTHKEY"},
    )
    checks = by_name(controller_checks(values, {}))
    assert checks["secret:pve_secret_source"].status == PASS
    assert SECRET not in checks["secret:pve_secret_source"].detail
    key = checks["secret:tailscale_authkey_source"]
    assert key.status == WARN and "needed only when the node has to log in" in key.detail
    assert key.fix.startswith("export TS_AUTHKEY=")
    due = by_name(controller_checks(values, {}, login_needed=True))
    assert due["secret:tailscale_authkey_source"].status == FAIL
    monkeypatch.delenv("PVE_TOKEN_SECRET")
    gone = by_name(controller_checks(values, {}))["secret:pve_secret_source"]
    assert gone.status == FAIL and "PVE_TOKEN_SECRET is unset or empty" in gone.detail
    missing = secret_source("pve_secret_source", {"file": str(tmp_path / "nope")}, "the secret")
    assert missing.status == FAIL and "does not exist on the controller" in missing.detail
    assert "(mode 0600)" in missing.fix


def test_a_missing_ca_fails_naming_the_setting_and_the_copy_and_the_deploy_refuses_it(
    tmp_path: Path,
) -> None:
    gone = str(tmp_path / "copied-ca.pem")
    values = proxmox_values(tmp_path, pve_ca_bundle=gone)
    check = tls_settings(values)
    assert check.status == FAIL and check.setting == "pve_ca_bundle"
    assert f"file {gone!r} does not exist on the controller" in check.detail
    assert "/etc/pve/pve-root-ca.pem" in check.fix
    with pytest.raises(SettingsError) as refused:
        validate(values)
    (line,) = refused.value.errors
    assert line.startswith(f"pve_ca_bundle: file {gone!r} does not exist on the controller")
    assert "/etc/pve/pve-root-ca.pem" in line


def test_a_ca_file_without_a_certificate_is_refused_before_connecting(tmp_path: Path) -> None:
    junk = owned(tmp_path / "ca.pem", "not a certificate\n", 0o644)
    values = proxmox_values(tmp_path, pve_ca_bundle=str(junk))
    check = tls_settings(values)
    assert check.status == FAIL and "holds no usable PEM certificate" in check.detail
    with pytest.raises(SettingsError) as refused:
        validate(values)
    assert refused.value.errors[0].startswith(f"pve_ca_bundle: file {str(junk)!r} holds no")


def test_tls_off_warns_and_a_pin_alone_passes(tmp_path: Path) -> None:
    insecure = tls_settings(proxmox_values(tmp_path, pve_insecure=True))
    assert insecure.status == WARN and "anyone on the path can read the token" in insecure.detail
    pinned = tls_settings(proxmox_values(tmp_path, pve_ca_bundle="", pve_fingerprint="ab" * 32))
    assert pinned.status == PASS and pinned.detail == "pinned by pve_fingerprint"


@pytest.mark.parametrize("which", ["pve_ssh_key", "ssh_key"])
def test_an_ssh_key_open_to_others_or_not_a_key_fails_and_the_deploy_refuses_it(
    tmp_path: Path, which: str
) -> None:
    key = private_key_file(tmp_path / "key", 0o644)
    check = private_key(which, str(key), default="")
    assert check.status == FAIL and check.fix == f"chmod 600 {key}"
    if which == "pve_ssh_key":
        with pytest.raises(SettingsError) as refused:
            validate(proxmox_values(tmp_path, pve_ssh_key=str(key)))
        assert refused.value.errors == [f"pve_ssh_key: {open_detail(key, 0o644)}"]
    else:
        assert ssh_key_problems({"ssh_key": str(key)}) == [f"ssh_key: {open_detail(key, 0o644)}"]
    public = owned(tmp_path / "id.pub", "ssh-ed25519 AAAA x\n")
    wrong = private_key(which, str(public), default="")
    assert wrong.status == FAIL and "is not a private key" in wrong.detail
    assert private_key(which, "", default="SSH's defaults").status == SKIP


def test_an_empty_keyring_pin_fails_with_how_to_pin_it(tmp_path: Path) -> None:
    check = keyring_pin(proxmox_values(tmp_path, tailscale_keyring_sha256=""))
    assert check.status == FAIL and check.setting == "tailscale_keyring_sha256"
    assert "sha256sum" in check.fix and "gpg --show-keys" in check.fix
    off = keyring_pin(
        proxmox_values(tmp_path, tailscale_keyring_sha256="", tailscale_enabled=False)
    )
    assert off.status == SKIP


def test_the_settings_check_leaves_out_what_a_failed_check_says() -> None:
    failed = Check("secret:pve_secret_source", FAIL, "open", setting="pve_secret_source")
    errors = ["pve_secret_source: file 'x' is open", "ct_cores: got 0; expected an integer"]
    check = settings_check(errors, [failed])
    assert check.status == FAIL and check.detail == "ct_cores: got 0; expected an integer"
    assert settings_check(errors[:1], [failed]).detail == "refused for the failed checks above"
    assert settings_check([], [failed]).status == PASS


def test_text_lists_each_check_with_its_fix_and_json_each_field() -> None:
    results = {
        "egograph-prod": [
            Check("pve_api", PASS, "https://pve:8006 answers"),
            Check("secret:x", FAIL, "open (mode 0644)", "chmod 600 /s", "x"),
        ]
    }
    assert render_text(results).splitlines() == [
        "egograph-prod:",
        "  PASS  pve_api: https://pve:8006 answers",
        "  FAIL  secret:x: open (mode 0644)",
        "        fix: chmod 600 /s",
        "  => 1 check(s) failed: secret:x; a deploy stops before changing anything",
    ]
    assert exit_code(results) == 1
    assert results["egograph-prod"][1].as_dict("egograph-prod") == {
        "target": "egograph-prod", "name": "secret:x", "status": "fail", "ok": False,
        "setting": "x", "detail": "open (mode 0644)", "fix": "chmod 600 /s",
    }  # fmt: skip
