"""The managed known_hosts of the containers (deploys/proxmox/hostkey.py): its lines, the
file's writes, and the inventory refusing SSH data the pinned key would override."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploys.inventory import pinned_host_key_conflicts
from deploys.proxmox.hostkey import (
    HostKey,
    HostKeyError,
    container_tag,
    forget_container,
    host_name,
    pinned,
    read_file,
    with_pin,
    without_container,
    write_file,
)


def _keygen(tmp_path: Path, name: str) -> tuple[HostKey, str]:
    """A fresh ed25519 key pair; the public key and ``ssh-keygen -l``'s fingerprint."""
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    pub = Path(f"{path}.pub").read_text()
    fp = subprocess.run(
        ["ssh-keygen", "-lf", f"{path}.pub"], check=True, capture_output=True, text=True
    ).stdout.split()[1]
    return HostKey.parse(pub, name), fp


TAG_A = container_tag("pve.lan", "egograph-prod")
TAG_B = container_tag("pve.lan", "other")


def test_parse_and_fingerprint_match_ssh_keygen(tmp_path: Path) -> None:
    key, fp = _keygen(tmp_path, "k")
    assert key.kind == "ssh-ed25519" and key.fingerprint() == fp


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected an ssh-ed25519 public key"),
        ("ssh-rsa AAAAB3NzaC1yc2E root@x", "expected an ssh-ed25519 public key"),
        ("ssh-ed25519 not*base64", "the key is not base64"),
        ("ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQAB", "the key blob is not an ssh-ed25519 key"),
    ],
)
def test_parse_refuses_what_is_not_an_ed25519_key(text: str, message: str) -> None:
    with pytest.raises(HostKeyError, match=message):
        HostKey.parse(text, "CT 100 key")


def test_host_name_as_openssh_writes_it() -> None:
    assert host_name("10.0.0.5", 22) == "10.0.0.5"
    assert host_name("10.0.0.5", 2222) == "[10.0.0.5]:2222"


def test_pin_adds_one_tagged_line_and_pinned_finds_it(tmp_path: Path) -> None:
    key, _ = _keygen(tmp_path, "k")
    text = with_pin("# mine\n10.0.0.9 ssh-ed25519 AAAA other-comment", "10.0.0.5", key, TAG_A)
    assert text.splitlines() == [
        "# mine",
        "10.0.0.9 ssh-ed25519 AAAA other-comment",
        f"10.0.0.5 ssh-ed25519 {key.blob} {TAG_A}",
    ]
    assert pinned(text, "10.0.0.5") == [key]
    assert pinned(text, "10.0.0.50") == [] and pinned(text, "[10.0.0.5]:2222") == []


def test_pin_for_a_recreated_container_replaces_its_line_at_any_address(tmp_path: Path) -> None:
    old, _ = _keygen(tmp_path, "old")
    new, _ = _keygen(tmp_path, "new")
    other, _ = _keygen(tmp_path, "other")
    text = with_pin(with_pin("", "10.0.0.5", old, TAG_A), "10.0.0.6", other, TAG_B)
    text = with_pin(text, "10.0.0.7", new, TAG_A)  # new address (dhcp), same container
    assert pinned(text, "10.0.0.5") == []
    assert pinned(text, "10.0.0.7") == [new] and pinned(text, "10.0.0.6") == [other]


def test_pin_never_replaces_another_containers_key(tmp_path: Path) -> None:
    key, _ = _keygen(tmp_path, "k")
    other, _ = _keygen(tmp_path, "other")
    text = with_pin("", "10.0.0.5", other, TAG_B)
    with pytest.raises(HostKeyError, match="already has a host key line"):
        with_pin(text, "10.0.0.5", key, TAG_A)
    # nor a line the deploy did not write (no tag)
    with pytest.raises(HostKeyError, match="already has a host key line"):
        with_pin(f"10.0.0.5 ssh-ed25519 {other.blob}\n", "10.0.0.5", key, TAG_A)


def test_without_container_drops_only_its_lines(tmp_path: Path) -> None:
    a, _ = _keygen(tmp_path, "a")
    b, _ = _keygen(tmp_path, "b")
    text = with_pin(with_pin("# keep\n", "10.0.0.5", a, TAG_A), "10.0.0.6", b, TAG_B)
    rest = without_container(text, TAG_A)
    assert rest == f"# keep\n10.0.0.6 ssh-ed25519 {b.blob} {TAG_B}\n"
    # a tag that merely starts like another's does not match
    assert without_container(text, container_tag("pve.lan", "egograph")) == text


def test_file_written_atomically_0600_and_forgotten(tmp_path: Path) -> None:
    key, _ = _keygen(tmp_path, "k")
    path = tmp_path / "cfg" / "egograph-deploy" / "known_hosts"
    assert read_file(str(path)) == ""
    assert forget_container(str(path), TAG_A) is False and not path.exists()
    write_file(str(path), with_pin("", "10.0.0.5", key, TAG_A))
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["known_hosts"]  # no temp left
    assert pinned(read_file(str(path)), "10.0.0.5") == [key]
    assert forget_container(str(path), TAG_A) is True
    assert read_file(str(path)) == ""


def test_write_failure_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(HostKeyError, match="ct_ssh_known_hosts: cannot write"):
        write_file(str(blocker / "known_hosts"), "x\n")


def test_inventory_refuses_ssh_data_the_pinned_key_overrides() -> None:
    problems = pinned_host_key_conflicts(
        {"ssh_known_hosts_file": "/x", "ssh_strict_host_key_checking": "no", "ssh_user": "root"}
    )
    assert [p.split(":")[0] for p in problems] == [
        "ssh_known_hosts_file",
        "ssh_strict_host_key_checking",
    ]
    assert all("ct_ssh_known_hosts" in p for p in problems)
    assert pinned_host_key_conflicts({"ssh_user": "root", "ssh_key": "/k"}) == []
