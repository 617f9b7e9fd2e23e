"""Controller side of the 'wheel' install method: take uv from the package index.

The ``uv`` wheel carries the static uv binary. The controller installs that wheel for the
target's platform into a scratch directory with its own uv (``uv pip install --target
--python-platform``: uv checks the wheel against the hash the index publishes), checks the
binaries against the wheel's RECORD, and keeps them in a cache, so the target needs no route
to the installer or release hosts.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PLATFORMS = {
    "x86_64": "x86_64-manylinux_2_17",
    "aarch64": "aarch64-manylinux_2_17",
}


class UvWheelError(Exception):
    pass


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "egograph-deploy" / "uv"


def binary_paths(version: str, machine: str) -> tuple[Path, Path]:
    """Where the cached ``uv`` and ``uvx`` for this version and machine live."""
    d = cache_dir() / f"{version}-{machine}"
    return d / "uv", d / "uvx"


def controller_uv() -> str:
    """The controller's own uv: the one running this project, else the ``uv`` package's."""
    found = os.environ.get("UV") or shutil.which("uv")
    if found:
        return found
    try:
        from uv import find_uv_bin
    except ImportError as exc:
        raise UvWheelError("the 'wheel' method needs uv on the controller") from exc
    return str(find_uv_bin())


def install_wheel(target: Path, requirement: str, platform: str, index: str = "") -> None:
    """``uv pip install`` one binary-only wheel for ``platform`` into ``target``."""
    cmd = [
        controller_uv(),
        "pip",
        "install",
        "--quiet",
        "--target",
        str(target),
        "--python-platform",
        platform,
        "--python-version",
        "3.12",
        "--only-binary",
        ":all:",
        "--no-deps",
        requirement,
    ]
    if index:
        cmd += ["--index-url", index]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UvWheelError(f"cannot fetch {requirement} for {platform}: {proc.stderr.strip()}")


def verify_record(target: Path, dist_info: str, files: list[str]) -> None:
    """Check installed files against the sha256 digests in the wheel's RECORD."""
    with open(target / dist_info / "RECORD", newline="") as f:
        record = {row[0]: row[1] for row in csv.reader(f) if len(row) >= 2}
    for rel in files:
        algo, _, want = record.get(rel, "").partition("=")
        digest = hashlib.sha256((target / rel).read_bytes()).digest()
        got = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if algo != "sha256" or got != want:
            raise UvWheelError(f"{rel} does not match the wheel's RECORD")


def ensure_binaries(index: str, version: str, machine: str) -> tuple[Path, Path]:
    """Fetch, verify and cache uv and uvx once; return the cached paths."""
    uv, uvx = binary_paths(version, machine)
    if uv.is_file() and uvx.is_file():
        return uv, uvx
    platform = PLATFORMS.get(machine)
    if platform is None:
        raise UvWheelError(
            f"uv_install_method 'wheel' supports machines {', '.join(PLATFORMS)}; "
            f"the target is {machine!r}"
        )
    uv.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=uv.parent) as tmp:
        target = Path(tmp)
        install_wheel(target, f"uv=={version}", platform, index)
        verify_record(target, f"uv-{version}.dist-info", ["bin/uv", "bin/uvx"])
        for name, dest in (("uv", uv), ("uvx", uvx)):
            part = target / "bin" / name
            part.chmod(0o755)
            part.replace(dest)
    return uv, uvx
