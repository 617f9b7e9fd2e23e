"""The ``tailscale`` .deb built from the real binaries, in a signed apt repository laid out
like Tailscale's own.

The real installer adds
``deb [signed-by=/usr/share/keyrings/tailscale-archive-keyring.gpg] https://<TS_PKGS>/stable/<distro> <codename> main``
and fetches the key from ``https://<TS_PKGS>/stable/<distro>/<codename>.noarmor.gpg``
(runbook §2). Serving ``out_dir`` over HTTP gives the same URL layout::

    stable/debian/{bookworm,trixie}.noarmor.gpg   binary public keyring (one key)
    stable/debian/dists/{bookworm,trixie}/{Release,InRelease,Release.gpg}
    stable/debian/dists/<codename>/main/binary-amd64/Packages(.gz)
    stable/debian/pool/tailscale_<version>_amd64.deb, tailscale-archive-keyring_<v>_all.deb
    stable/ubuntu/...                              the same for noble

The package holds what Tailscale's own deb holds (``release/dist/unixpkgs/pkgs.go``
``debTarget.Build``: the two binaries, the systemd units and ``/etc/default/tailscaled`` as a
conffile, the maintainer scripts of ``release/deb/``, ``Depends: iptables``), taken from the
pinned module's own source as downloaded, never from copies in this project. Only the
signing key is the sandbox's: made once with gpg in a private GNUPGHOME under ``key_dir``.
The repository is rebuilt only when this file, the binaries or the key change. Host tools:
``dpkg-deb`` (package dpkg) and ``gpg`` (package gnupg).

Usage: ``python -m tests.sandbox.tailscale.build OUT KEYDIR [--base-url URL]`` prints a JSON
summary.
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

from . import TAILSCALE
from .gobuild import GoBuildError, ensure_built, module_dir

TRACK = "stable"
DISTRIBUTIONS: tuple[tuple[str, str], ...] = (
    ("debian", "bookworm"),
    ("debian", "trixie"),
    ("ubuntu", "noble"),
)
ARCH = "amd64"
KEYRING_NAME = "tailscale-archive-keyring.gpg"
KEYRING_DEST = f"/usr/share/keyrings/{KEYRING_NAME}"
KEYRING_PACKAGE_VERSION = "1.35.181"
KEY_UID = "Tailscale sandbox test repository <sandbox@tailscale.invalid>"
MAINTAINER = "Tailscale Inc <info@tailscale.com>"
STAMP = ".sandbox-build.json"

# The package's files: built binary or module file -> (path in the package, mode). The
# module paths are those pkgs.go debTarget.Build packs.
BINARIES = {
    "tailscale": ("usr/bin/tailscale", 0o755),
    "tailscaled": ("usr/sbin/tailscaled", 0o755),
}
MODULE_FILES = {
    "cmd/tailscaled/tailscaled.service": ("lib/systemd/system/tailscaled.service", 0o644),
    "cmd/tailscaled/tailscale-online.target": (
        "lib/systemd/system/tailscale-online.target",
        0o644,
    ),
    "cmd/tailscaled/tailscale-wait-online.service": (
        "lib/systemd/system/tailscale-wait-online.service",
        0o644,
    ),
    "cmd/tailscaled/tailscaled.defaults": ("etc/default/tailscaled", 0o644),
}
MAINTAINER_SCRIPTS = {
    "release/deb/debian.postinst.sh": "postinst",
    "release/deb/debian.prerm.sh": "prerm",
    "release/deb/debian.postrm.sh": "postrm",
}


class BuildError(RuntimeError):
    """The repository could not be built (missing host tool, bad sources)."""


@dataclass(frozen=True)
class RepoInfo:
    """What a test needs to point a deploy at the built repository."""

    root: Path
    keyring: Path
    keyring_sha256: str
    fingerprint: str
    version: str
    distributions: tuple[tuple[str, str], ...]
    rebuilt: bool

    @property
    def codenames(self) -> tuple[str, ...]:
        return tuple(codename for _, codename in self.distributions)

    def repo_url(self, base_url: str, distro: str) -> str:
        return f"{base_url.rstrip('/')}/{TRACK}/{distro}"

    def key_url(self, base_url: str, distro: str, codename: str) -> str:
        return f"{self.repo_url(base_url, distro)}/{codename}.noarmor.gpg"

    def source_line(self, base_url: str, distro: str, codename: str) -> str:
        return f"deb [signed-by={KEYRING_DEST}] {self.repo_url(base_url, distro)} {codename} main"

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "keyring": str(self.keyring),
            "keyring_sha256": self.keyring_sha256,
            "fingerprint": self.fingerprint,
            "version": self.version,
            "distributions": [list(d) for d in self.distributions],
            "rebuilt": self.rebuilt,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, rebuilt: bool) -> RepoInfo:
        return cls(
            root=Path(data["root"]),
            keyring=Path(data["keyring"]),
            keyring_sha256=data["keyring_sha256"],
            fingerprint=data["fingerprint"],
            version=data["version"],
            distributions=tuple((d[0], d[1]) for d in data["distributions"]),
            rebuilt=rebuilt,
        )


def build_repo(out_dir: Path, key_dir: Path, *, base_url: str | None = None) -> RepoInfo:
    """Build (or reuse) the signed repository under ``out_dir``, with the pinned
    ``tailscale`` package (built from its Go module first when not cached).

    ``base_url`` additionally writes ``<codename>.tailscale-keyring.list`` files, like the
    real repository offers to the installer script.
    """
    for tool, package in (("dpkg-deb", "dpkg"), ("gpg", "gnupg")):
        if shutil.which(tool) is None:
            raise BuildError(f"{tool} not found; install the {package} package")
    out_dir = out_dir.resolve()
    key_dir = key_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    bin_dir = ensure_built(TAILSCALE)
    source = module_dir(TAILSCALE)

    with _locked(out_dir / ".sandbox-build.lock"):
        gnupghome, fingerprint = _ensure_key(key_dir)
        try:
            keyring = key_dir / KEYRING_NAME
            _write_if_changed(keyring, _gpg(gnupghome, "--export", fingerprint).stdout)
            stamp = _sources_hash(bin_dir, fingerprint, base_url)
            stamp_file = out_dir / STAMP
            if stamp_file.exists():
                old = json.loads(stamp_file.read_text())
                if old.get("hash") == stamp and (out_dir / TRACK).is_dir():
                    return RepoInfo.from_json(old["info"], rebuilt=False)

            info = RepoInfo(
                root=out_dir,
                keyring=keyring,
                keyring_sha256=hashlib.sha256(keyring.read_bytes()).hexdigest(),
                fingerprint=fingerprint,
                version=TAILSCALE.version,
                distributions=DISTRIBUTIONS,
                rebuilt=True,
            )
            work = out_dir / ".sandbox-work"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            debs = [
                _build_tailscale_deb(work, bin_dir, source),
                _build_keyring_deb(work, keyring),
            ]
            tree = work / TRACK
            for distro, codename in DISTRIBUTIONS:
                _lay_out_distribution(tree / distro, codename, debs, keyring, gnupghome)
                if base_url is not None:
                    line = info.source_line(base_url, distro, codename)
                    (tree / distro / f"{codename}.tailscale-keyring.list").write_text(line + "\n")
            shutil.rmtree(out_dir / TRACK, ignore_errors=True)
            tree.rename(out_dir / TRACK)
            shutil.rmtree(work)
            stamp_file.write_text(json.dumps({"hash": stamp, "info": info.to_json()}, indent=2))
            return info
        finally:
            # gpg starts an agent for the private home; don't leave it running.
            subprocess.run(
                ["gpgconf", "--homedir", str(gnupghome), "--kill", "gpg-agent"],
                capture_output=True,
                check=False,
            )


# -- package ----------------------------------------------------------------------------
def _build_tailscale_deb(work: Path, bin_dir: Path, source: Path) -> Path:
    version = TAILSCALE.version
    stage = work / f"tailscale-{version}"
    for name, (dest, mode) in BINARIES.items():
        _put(stage / dest, (bin_dir / name).read_bytes(), mode)
    for rel, (dest, mode) in MODULE_FILES.items():
        _put(stage / dest, (source / rel).read_bytes(), mode)
    for rel, script in MAINTAINER_SCRIPTS.items():
        _put(stage / "DEBIAN" / script, (source / rel).read_bytes(), 0o755)
    _put(stage / "DEBIAN" / "conffiles", b"/etc/default/tailscaled\n", 0o644)
    # The fields pkgs.go gives (nfpm fills in Installed-Size).
    control = {
        "Package": "tailscale",
        "Version": version,
        "Section": "net",
        "Priority": "extra",
        "Architecture": ARCH,
        "Maintainer": MAINTAINER,
        "Installed-Size": str(_installed_size(stage)),
        "Replaces": "tailscale-relay",
        "Depends": "iptables",
        "Recommends": f"tailscale-archive-keyring (>= {KEYRING_PACKAGE_VERSION}), iproute2",
        "Conflicts": "tailscale-relay",
        "Homepage": "https://www.tailscale.com",
        "Description": "The easiest, most secure, cross platform way to use WireGuard + "
        "oauth2 + 2FA/SSO\n"
        f" tailscale {version} built from its Go module for the egograph-deploy sandbox.",
    }
    return _dpkg_deb(stage, control, work / f"tailscale_{version}_{ARCH}.deb")


def _build_keyring_deb(work: Path, keyring: Path) -> Path:
    stage = work / "tailscale-archive-keyring"
    _put(stage / KEYRING_DEST.lstrip("/"), keyring.read_bytes(), 0o644)
    control = {
        "Package": "tailscale-archive-keyring",
        "Version": KEYRING_PACKAGE_VERSION,
        "Section": "misc",
        "Priority": "optional",
        "Architecture": "all",
        "Maintainer": MAINTAINER,
        "Installed-Size": str(_installed_size(stage)),
        "Homepage": "https://www.tailscale.com",
        "Description": "Tailscale apt repository signing key (sandbox)\n"
        " Public key of the sandbox's repository, installed where the deploy puts it.",
    }
    return _dpkg_deb(
        stage, control, work / f"tailscale-archive-keyring_{KEYRING_PACKAGE_VERSION}_all.deb"
    )


def _dpkg_deb(stage: Path, control: dict[str, str], deb: Path) -> Path:
    _put(stage / "DEBIAN" / "control", _stanza(control).encode(), 0o644)
    for path in stage.rglob("*"):  # reproducible member times
        os.utime(path, (0, 0), follow_symlinks=False)
    env = {**os.environ, "SOURCE_DATE_EPOCH": "0"}
    _run(["dpkg-deb", "--build", "--root-owner-group", "-Zgzip", str(stage), str(deb)], env=env)
    return deb


def _installed_size(stage: Path) -> int:
    return sum(-(-p.stat().st_size // 1024) for p in stage.rglob("*") if p.is_file()) or 1


# -- repository -------------------------------------------------------------------------
def _lay_out_distribution(
    root: Path,
    codename: str,
    debs: list[Path],
    keyring: Path,
    gnupghome: Path,
) -> None:
    pool = root / "pool"
    pool.mkdir(parents=True, exist_ok=True)
    stanzas = []
    for deb in debs:
        dest = pool / deb.name
        if not dest.exists():
            shutil.copyfile(deb, dest)
        data = dest.read_bytes()
        fields = _control_fields(dest)
        fields.update(
            Filename=f"pool/{deb.name}",
            Size=str(len(data)),
            MD5sum=hashlib.md5(data).hexdigest(),
            SHA1=hashlib.sha1(data).hexdigest(),
            SHA256=hashlib.sha256(data).hexdigest(),
        )
        stanzas.append(_stanza(fields))
    dist = root / "dists" / codename
    packages = "\n".join(stanzas).encode()
    index_files = {
        f"main/binary-{ARCH}/Packages": packages,
        f"main/binary-{ARCH}/Packages.gz": gzip.compress(packages, mtime=0),
    }
    for rel, data in index_files.items():
        _put(dist / rel, data, 0o644)
    release = _stanza(
        {
            "Origin": "Tailscale",
            "Label": "Tailscale",
            "Suite": codename,
            "Codename": codename,
            "Date": formatdate(usegmt=True),
            "Architectures": ARCH,
            "Components": "main",
            "Description": "Tailscale packages for the egograph-deploy sandbox",
        }
    )
    for title, algo in (("MD5Sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256")):
        release += f"{title}:\n"
        for rel, data in index_files.items():
            release += f" {hashlib.new(algo, data).hexdigest()} {len(data):>8} {rel}\n"
    (dist / "Release").write_text(release)
    sign = ["--local-user", _fingerprint(gnupghome), "--digest-algo", "SHA512"]
    _gpg(
        gnupghome, *sign, "--clearsign", "--output", str(dist / "InRelease"), str(dist / "Release")
    )
    _gpg(
        gnupghome,
        *sign,
        "--armor",
        "--detach-sign",
        "--output",
        str(dist / "Release.gpg"),
        str(dist / "Release"),
    )
    shutil.copyfile(keyring, root / f"{codename}.noarmor.gpg")


def _control_fields(deb: Path) -> dict[str, str]:
    text = _run(["dpkg-deb", "--field", str(deb)]).stdout.decode()
    fields: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if line.startswith((" ", "\t")):
            fields[last] += "\n" + line
        elif ":" in line:
            last, _, value = line.partition(":")
            fields[last] = value.strip()
    return fields


def _stanza(fields: dict[str, str]) -> str:
    return "".join(f"{key}: {value}\n" for key, value in fields.items())


# -- signing key ------------------------------------------------------------------------
def _ensure_key(key_dir: Path) -> tuple[Path, str]:
    gnupghome = key_dir / "gnupg"
    gnupghome.mkdir(parents=True, exist_ok=True)
    gnupghome.chmod(0o700)
    try:
        return gnupghome, _fingerprint(gnupghome)
    except BuildError:
        pass
    # ed25519 + SHA-512: accepted by gpgv (bookworm, noble) and by sqv's policy (trixie).
    _gpg(
        gnupghome,
        "--passphrase",
        "",
        "--cert-digest-algo",
        "SHA512",
        "--quick-generate-key",
        KEY_UID,
        "ed25519",
        "sign",
        "never",
    )
    return gnupghome, _fingerprint(gnupghome)


def _fingerprint(gnupghome: Path) -> str:
    out = _gpg(gnupghome, "--with-colons", "--list-secret-keys").stdout.decode()
    for line in out.splitlines():
        if line.startswith("fpr:"):
            return line.split(":")[9]
    raise BuildError(f"no signing key in {gnupghome}")


def _gpg(gnupghome: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return _run(
        [
            "gpg",
            "--batch",
            "--yes",
            "--quiet",
            "--homedir",
            str(gnupghome),
            "--pinentry-mode",
            "loopback",
            *args,
        ]
    )


# -- helpers ----------------------------------------------------------------------------
def _sources_hash(bin_dir: Path, fingerprint: str, base_url: str | None) -> str:
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    h.update((bin_dir / "build.json").read_bytes())
    h.update(json.dumps([fingerprint, base_url]).encode())
    return h.hexdigest()


def _put(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def _write_if_changed(path: Path, data: bytes) -> None:
    if not path.exists() or path.read_bytes() != data:
        _put(path, data, 0o644)


def _run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(cmd, capture_output=True, env=env, check=False)
    if proc.returncode != 0:
        raise BuildError(
            f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode().strip()}"
        )
    return proc


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("key_dir", type=Path)
    parser.add_argument("--base-url", default=None)
    args = parser.parse_args(argv)
    try:
        info = build_repo(args.out_dir, args.key_dir, base_url=args.base_url)
    except (BuildError, GoBuildError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(info.to_json(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
