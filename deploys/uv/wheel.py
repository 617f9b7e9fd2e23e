"""Controller side of the 'wheel' install method: take uv from the package index.

The `uv` wheel on PyPI carries the static uv binary (``uv-<ver>.data/scripts/uv``). The
controller downloads the wheel for the target's platform through the index's JSON API
(PEP 691), checks the sha256 the index publishes, and keeps the extracted binaries in a
cache, so the target needs no route to the installer or release hosts.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

PLATFORM_TAGS = {
    "x86_64": "manylinux_2_17_x86_64",
    "aarch64": "manylinux_2_17_aarch64",
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


def _get(url: str, accept: str | None = None, timeout: float = 60) -> bytes:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        data: bytes = resp.read()
        return data


def index_files(index: str, project: str) -> list[dict[str, Any]]:
    """The files of ``project`` on a PEP 691 simple index, with absolute URLs."""
    url = f"{index.rstrip('/')}/{project}/"
    try:
        listing = json.loads(_get(url, "application/vnd.pypi.simple.v1+json"))
    except (OSError, ValueError) as exc:
        raise UvWheelError(f"cannot read the project page {url}: {exc}") from exc
    files: list[dict[str, Any]] = listing.get("files", [])
    for f in files:
        f["url"] = urllib.parse.urljoin(url, f["url"])
    return files


def download_verified(url: str, sha256: str) -> bytes:
    """Download ``url`` and check it against the sha256 the index published."""
    data = _get(url, timeout=300)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise UvWheelError(f"{url}: sha256 {digest} does not match the index's {sha256}")
    return data


def find_wheel(index: str, version: str, machine: str) -> tuple[str, str, str]:
    """Return (filename, url, sha256) of the uv wheel for ``machine`` on the index."""
    tag = PLATFORM_TAGS.get(machine)
    if tag is None:
        raise UvWheelError(
            f"uv_install_method 'wheel' supports machines {', '.join(PLATFORM_TAGS)}; "
            f"the target is {machine!r}"
        )
    for f in index_files(index, "uv"):
        name = f.get("filename", "")
        if name.startswith(f"uv-{version}-") and name.endswith(".whl") and tag in name:
            sha = f.get("hashes", {}).get("sha256")
            if not sha:
                raise UvWheelError(f"{name} has no sha256 on the index")
            return name, f["url"], sha
    raise UvWheelError(f"no uv {version} wheel for {tag} on {index}")


def ensure_binaries(index: str, version: str, machine: str) -> tuple[Path, Path]:
    """Download, verify and unpack the wheel once; return the cached (uv, uvx) paths."""
    uv, uvx = binary_paths(version, machine)
    if uv.is_file() and uvx.is_file():
        return uv, uvx
    name, url, sha = find_wheel(index, version, machine)
    data = download_verified(url, sha)
    uv.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=uv.parent) as tmp:
        wheel = Path(tmp) / name
        wheel.write_bytes(data)
        with zipfile.ZipFile(wheel) as zf:
            for member, dest in (
                (f"uv-{version}.data/scripts/uv", uv),
                (f"uv-{version}.data/scripts/uvx", uvx),
            ):
                try:
                    content = zf.read(member)
                except KeyError as exc:
                    raise UvWheelError(f"{name} has no {member}") from exc
                part = Path(tmp) / dest.name
                part.write_bytes(content)
                part.chmod(0o755)
                part.replace(dest)
    return uv, uvx
