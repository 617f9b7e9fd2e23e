"""The container root filesystem: Debian 13 (trixie) debootstrapped once and cached.

It stands in for the Proxmox Ubuntu template: systemd, sshd and python3, trusting the
host's CA certificates (HTTPS here goes through a CA in the host's trust store). git and
curl are left out on purpose: installing them is the deploy's job (runbook §2).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from . import paths

SUITE = "trixie"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "ca-certificates",
    "iproute2",
    "procps",
)
SSHD_CONFIG = """\
# egograph sandbox: key-only root login, one host key written per container.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
HostKey /etc/ssh/ssh_host_ed25519_key
"""


def _host_cas() -> list[Path]:
    return sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt"))


def recipe() -> str:
    """Identifies what the cached rootfs was built from; a change rebuilds it."""
    h = hashlib.sha256()
    h.update(f"{SUITE}|{','.join(PACKAGES)}|{SSHD_CONFIG}|v1".encode())
    for ca in _host_cas():
        h.update(ca.read_bytes())
    return h.hexdigest()


def rootfs_path() -> Path:
    return paths.CACHE / f"rootfs-{SUITE}"


def ensure_rootfs() -> Path:
    root = rootfs_path()
    stamp = root / ".egograph-sandbox-recipe"
    want = recipe()
    if stamp.is_file() and stamp.read_text().strip() == want:
        return root
    paths.CACHE.mkdir(parents=True, exist_ok=True)
    tmp = paths.CACHE / f"rootfs-{SUITE}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(tmp)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    _customise(tmp)
    (tmp / ".egograph-sandbox-recipe").write_text(want + "\n")
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    return root


def _customise(root: Path) -> None:
    cas = root / "usr/local/share/ca-certificates"
    cas.mkdir(parents=True, exist_ok=True)
    for ca in _host_cas():
        shutil.copy2(ca, cas / ca.name)
    subprocess.run(
        ["chroot", str(root), "update-ca-certificates"], check=True, stdout=subprocess.DEVNULL
    )
    # Per-container host keys are written at creation; the shared ones must not exist.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/ssh/sshd_config.d").mkdir(exist_ok=True)
    (root / "etc/ssh/sshd_config.d/egograph-sandbox.conf").write_text(SSHD_CONFIG)
    # An empty machine-id makes systemd generate one per container at boot.
    (root / "etc/machine-id").write_text("")
    # Like a Proxmox template, apt starts with no lists: the deploy refreshes them.
    for lists in (root / "var/lib/apt/lists").glob("*_*"):
        lists.unlink()
