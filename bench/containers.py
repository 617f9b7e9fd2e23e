"""The benchmark's sandbox containers: fresh ones per converge, package caches seeded.

Every container the benchmark makes is called ``bench-…`` and is destroyed at the end (also
on failure: :func:`destroy_all`). A first converge downloads ~70 MB from the Debian mirror
and the package index (apt lists, git/curl and their dependencies, the app's wheels). So that
dozens of converges neither lean on those registries nor measure their latency, the first
converge of a ``make bench`` runs on a pristine container (reported as the *cold* figure)
and the package caches it filled are copied into each later container before it is used
(apt lists and ``.deb`` files, uv's cache). The deploy, the shell script and the playbook
still run every step (``apt-get update`` becomes a conditional request, ``apt-get install``
and ``uv sync`` read the local caches); ``--cold`` turns the seeding off.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.sandbox import api as sandbox
from tests.sandbox.api import Container

PREFIX = "bench-"
SEED = sandbox.CACHE / "bench-seed"
"""Package caches copied from a converged container (kept between runs of the benchmark)."""

# What a first converge downloads from outside the sandbox, by path in the container.
_SEEDED = ("var/lib/apt/lists", "var/cache/apt/archives", "root/.cache/uv")
_LOCAL = (sandbox.HOST_IP, "tailscale")
"""Files from the sandbox's own servers are left out of the seed (they cost nothing)."""


def fresh(names: Iterable[str], *, seed: bool) -> list[Container]:
    """Destroy and recreate the named containers, boot them (in parallel: a fleet of 8
    boots in the time of about two), seed their package caches."""
    made = []
    for name in names:
        assert name.startswith(PREFIX), name
        destroy([name])
        made.append(sandbox.container(name))

    def boot(c: Container) -> None:
        c.start()
        if seed and SEED.is_dir():
            _copy_tree(SEED, c.root)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(boot, made))
    return made


def preseed(name: str) -> None:
    """Put the package caches into the upper layer of a container that something else (the
    emulated Proxmox node) will create and boot: its first boot starts with them."""
    assert name.startswith(PREFIX), name
    c = sandbox.container(name, tun=False)
    if SEED.is_dir():
        upper = c.dir / "upper"
        upper.mkdir(parents=True, exist_ok=True)
        _copy_tree(SEED, upper)


def capture_seed(c: Container) -> None:
    """Keep the package caches a converged container downloaded, for the next containers."""
    tmp = SEED.with_name(SEED.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    upper = c.dir / "upper"
    for rel in _SEEDED:
        src = upper / rel
        if not src.is_dir():
            continue
        dest = tmp / rel
        dest.mkdir(parents=True, exist_ok=True)
        for item in src.iterdir():
            if item.name in ("lock", "partial") or any(m in item.name for m in _LOCAL):
                continue
            _copy(item, dest / item.name)
    shutil.rmtree(SEED, ignore_errors=True)
    tmp.rename(SEED)


def _copy(src: Path, dest: Path) -> None:
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dest, symlinks=True)
    else:
        shutil.copy2(src, dest, follow_symlinks=False)


def _copy_tree(src: Path, dest: Path) -> None:
    subprocess.run(["cp", "-a", f"{src}/.", f"{dest}/"], check=True)


def _destroy(c: Container) -> None:
    """Power the container off at once (it is thrown away: no orderly shutdown, which waits
    for tailscaled and the app and can take the sandbox's 30 s stop timeout), then destroy."""
    if c.running():
        with contextlib.suppress(subprocess.TimeoutExpired):
            c.ssh("systemctl poweroff --force --force", check=False, timeout=10)
        deadline = time.monotonic() + 5
        while c.running() and time.monotonic() < deadline:
            _reap(c)
            time.sleep(0.1)
    c.destroy()


def _reap(c: Container) -> None:
    """nspawn was started by this process (``Container.start``): once it exits it stays a
    zombie, which ``Container.running`` takes for alive, until its parent waits for it."""
    pid = c._pid()
    if pid is not None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def destroy(names: Iterable[str]) -> None:
    known = {c.name: c for c in sandbox.all_containers()}
    for name in names:
        if name in known:
            _destroy(known[name])


def destroy_all() -> None:
    """Every ``bench-…`` container, whatever state it is in."""
    for c in sandbox.all_containers():
        if c.name.startswith(PREFIX):
            _destroy(c)


BENCH_REPO = "egograph-bench.git"


def publish_app() -> str:
    """The fixture app in a repository of the benchmark's own (one commit), served by the
    sandbox's git daemon; return its URL.

    Not the sandbox's shared ``egograph.git``: tests running beside the benchmark push
    releases (and deliberately broken locks) there, which would turn no-op runs into
    updates halfway through.
    """
    bare = sandbox.GIT_ROOT / BENCH_REPO
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "app"
        shutil.copytree(
            sandbox.FIXTURE_APP, tree, ignore=shutil.ignore_patterns("__pycache__", ".venv")
        )
        (tree / ".gitignore").write_text(".venv/\n__pycache__/\n*.env\n.env\n")
        git = ["git", "-C", str(tree), "-c", "user.name=egograph bench"]
        git += ["-c", "user.email=bench@egograph.invalid"]
        for args in (
            ["init", "--quiet", "--initial-branch=main"],
            ["add", "-A"],
            ["commit", "--quiet", "-m", "fixture app (bench)"],
        ):
            subprocess.run([*git, *args], check=True, capture_output=True)
        shutil.rmtree(bare, ignore_errors=True)
        subprocess.run(
            ["git", "clone", "--quiet", "--bare", str(tree), str(bare)],
            check=True,
            capture_output=True,
        )
    return f"git://{sandbox.HOST_IP}/{BENCH_REPO}"
