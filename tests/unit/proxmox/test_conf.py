"""Pure text edits of PVE LXC conf files."""

from __future__ import annotations

from deploys.proxmox.conf import (
    APPARMOR_UNCONFINED_LINE,
    TUN_CGROUP_LINE,
    TUN_MOUNT_LINE,
    ensure_top_lines,
    has_top_lines,
    parse_line,
    parse_sections,
    remove_top_lines,
    render_sections,
    tun_lines,
)
from tests.sandbox.pve.emulator import parse_pct_config

FULL = """#My app%3A backend
#second line
arch: amd64
cores: 2
features: nesting=1
hostname: app
memory: 2048
net0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp,type=veth
ostype: ubuntu
rootfs: local-lvm:vm-123-disk-0,size=8G
swap: 512
unprivileged: 1

[pve:pending]
features: keyctl=1,nesting=1

[snap1]
#snapshot description
arch: amd64
hostname: app
snaptime: 1700000000
"""


def test_tun_lines() -> None:
    assert tun_lines() == [
        "lxc.cgroup2.devices.allow: c 10:200 rwm",
        "lxc.mount.entry: /dev/net/tun dev/net/tun none bind,create=file",
    ]
    assert tun_lines(apparmor_unconfined=True)[-1] == "lxc.apparmor.profile: unconfined"
    assert tun_lines(True) == [TUN_CGROUP_LINE, TUN_MOUNT_LINE, APPARMOR_UNCONFINED_LINE]


def test_sections_roundtrip() -> None:
    sections = parse_sections(FULL)
    assert [s.name for s in sections] == [None, "pve:pending", "snap1"]
    assert sections[1].is_pending and sections[0].is_top
    assert sections[0].description() == ["#My app%3A backend", "#second line"]
    assert ("features", "keyctl=1,nesting=1") in sections[1].entries()
    assert render_sections(sections) == FULL


def test_insert_into_top_section_only() -> None:
    new, changed = ensure_top_lines(FULL, tun_lines())
    assert changed
    top, pending, snap = parse_sections(new)
    assert top.lines[-3:] == [TUN_CGROUP_LINE, TUN_MOUNT_LINE, ""]
    assert top.lines[:2] == ["#My app%3A backend", "#second line"]  # description kept
    assert TUN_CGROUP_LINE not in pending.lines + snap.lines
    assert new.endswith("snaptime: 1700000000\n")
    # the emulator's PVE-style parser sees the raw lines in the current config only
    parsed = parse_pct_config(new)
    assert parsed["lxc"] == [
        ["lxc.cgroup2.devices.allow", "c 10:200 rwm"],
        ["lxc.mount.entry", "/dev/net/tun dev/net/tun none bind,create=file"],
    ]
    assert "lxc" not in parsed["pending"] and "lxc" not in parsed["snapshots"]["snap1"]
    assert parsed["description"] == "My app: backend\nsecond line\n"
    assert parsed["pending"]["features"] == "keyctl=1,nesting=1"


def test_idempotent() -> None:
    once, changed = ensure_top_lines(FULL, tun_lines(True))
    assert changed
    twice, changed_again = ensure_top_lines(once, tun_lines(True))
    assert not changed_again and twice == once
    assert has_top_lines(once, tun_lines(True))
    assert not has_top_lines(FULL, tun_lines())


def test_key_equals_value_spelling_is_recognised() -> None:
    text = (
        "arch: amd64\n"
        "lxc.cgroup2.devices.allow = c 10:200 rwm\n"
        "lxc.mount.entry=/dev/net/tun  dev/net/tun none bind,create=file\n"
    )
    assert has_top_lines(text, tun_lines())
    assert ensure_top_lines(text, tun_lines()) == (text, False)
    removed, changed = remove_top_lines(text, tun_lines())
    assert changed and removed == "arch: amd64\n"


def test_partial_presence_adds_only_missing() -> None:
    text = "arch: amd64\nlxc.cgroup2.devices.allow: c 10:200 rwm\n"
    new, changed = ensure_top_lines(text, tun_lines())
    assert changed
    assert new == text + TUN_MOUNT_LINE + "\n"


def test_lines_in_pending_or_snapshot_do_not_count() -> None:
    text = "arch: amd64\n\n[snap1]\narch: amd64\n" + TUN_CGROUP_LINE + "\n" + TUN_MOUNT_LINE + "\n"
    assert not has_top_lines(text, tun_lines())
    new, changed = ensure_top_lines(text, tun_lines())
    assert changed
    assert new.startswith("arch: amd64\n" + TUN_CGROUP_LINE + "\n" + TUN_MOUNT_LINE + "\n\n[snap1]")
    # removal leaves the snapshot untouched
    back, changed = remove_top_lines(new, tun_lines())
    assert changed and back == text


def test_empty_and_description_only() -> None:
    assert ensure_top_lines("", tun_lines()) == ("\n".join(tun_lines()) + "\n", True)
    new, _ = ensure_top_lines("#only a description\n", [TUN_CGROUP_LINE])
    assert new == "#only a description\n" + TUN_CGROUP_LINE + "\n"


def test_parse_line() -> None:
    assert parse_line("lxc.mount.entry = a b") == ("lxc.mount.entry", "a b")
    assert parse_line("memory: 512") == ("memory", "512")
    assert parse_line("#comment") is None
    assert parse_line("[pve:pending]") is None
