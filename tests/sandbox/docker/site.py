"""The sandbox's Docker VM stand-in: a container that runs a Docker engine, and a local
base image (no image registry is reachable here).

The base image is the sandbox's own Debian root (python3, the host's CA trusted) plus the
uv binary from the ``uv`` wheel, imported with ``docker import``. The engine is installed
and the image imported before the deploy runs, as on a prepared air-gapped VM: an image
cannot be imported into an engine that does not exist yet. The engine is then stopped and
disabled, so the deploy still has to start and enable it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from deploys.uv.wheel import install_wheel, verify_record

from .. import paths
from ..container import Container
from ..rootfs import ensure_rootfs, recipe

BASE_IMAGE = "egograph-sandbox/python:trixie"
UV_VERSION = "0.13.9"


def base_image_tar() -> Path:
    """The rootfs plus ``/usr/local/bin/uv`` as one tar, cached per rootfs recipe."""
    root = ensure_rootfs()
    tar = paths.CACHE / f"docker-base-{recipe()[:12]}-uv{UV_VERSION}.tar"
    if tar.exists():
        return tar
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(tmp) / "wheel"
        install_wheel(wheel, f"uv=={UV_VERSION}", "x86_64-manylinux_2_17")
        dist_info = next(wheel.glob("uv-*.dist-info")).name
        binary = next(wheel.glob("**/bin/uv"))
        verify_record(wheel, dist_info, [str(binary.relative_to(wheel))])
        extra = Path(tmp) / "extra"
        (extra / "usr/local/bin").mkdir(parents=True)
        shutil.copy2(binary, extra / "usr/local/bin/uv")
        partial = tar.with_suffix(".tmp")
        subprocess.run(
            [
                "tar",
                "-cf",
                str(partial),
                "-C",
                str(root),
                "--exclude=./proc",
                "--exclude=./sys",
                "--exclude=./dev",
                ".",
                "-C",
                str(extra),
                "usr/local/bin/uv",
            ],
            check=True,
        )
        partial.replace(tar)
    return tar


def prepare_vm(c: Container) -> None:
    """Engine installed (Debian's docker.io), base image imported, engine stopped."""
    c.ssh(
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
        "--no-install-recommends docker.io docker-cli >/dev/null",
        timeout=600,
    )
    dest = c.root / "var/tmp/egograph-base.tar"
    shutil.copyfile(base_image_tar(), dest)
    try:
        c.ssh(f"docker import -c 'CMD [\"python3\"]' /var/tmp/egograph-base.tar {BASE_IMAGE}")
    finally:
        dest.unlink(missing_ok=True)
    c.ssh("systemctl disable --now -q docker.service docker.socket")
    # The deploy installs the CLI the way it would on a fresh Debian 13 VM.
    c.ssh("apt-get remove -y -qq docker-cli >/dev/null")
