"""pytest fixtures: a PVE API emulator on 127.0.0.1 (free port) per test, and the
credentials it knows. The conftests of the tests that run against it (the product's
``tests/unit/proxmox``, the sandbox's own ``tests/sandbox_tests/pve``) take them from here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .emulator import PveEmulator

ROOT_PASSWORD = "root-secret-pw"
DEPLOY_TOKEN = "deploy@pve!pyinfra"
DEPLOY_SECRET = "5f2c8b1e-2b7a-4d2e-9c55-0c6a1a0f9d11"
AUDIT_TOKEN = "audit@pve!ro"
AUDIT_SECRET = "a0d1e2f3-0000-4000-8000-000000000001"
ROOT_TOKEN = "root@pam!full"
ROOT_TOKEN_SECRET = "r00t-t0ken-0000-4000-8000-000000000002"

DEPLOY_PRIVS = [
    "VM.Allocate", "VM.Audit", "VM.Config.CPU", "VM.Config.Disk", "VM.Config.Memory",
    "VM.Config.Network", "VM.Config.Options", "VM.PowerMgmt", "VM.Snapshot",
    "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit", "Sys.Audit",
    "SDN.Use",
]  # fmt: skip

UBUNTU = "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"


def make_emulator(state_dir: Path, version: str = "9.1", **kwargs: Any) -> PveEmulator:
    return PveEmulator(
        state_dir,
        version=version,
        users={"root@pam": {"password": ROOT_PASSWORD}},
        tokens={
            DEPLOY_TOKEN: {"secret": DEPLOY_SECRET, "privs": {"/": DEPLOY_PRIVS}},
            AUDIT_TOKEN: {"secret": AUDIT_SECRET, "privs": {"/": ["VM.Audit", "Sys.Audit"]}},
            ROOT_TOKEN: {"secret": ROOT_TOKEN_SECRET, "privs": {"/": ["*"]}},
        },
        auth_delay=0.0,
        **kwargs,
    ).start(port=0)


@pytest.fixture
def start_emulator(tmp_path: Path) -> Iterator[Callable[..., PveEmulator]]:
    """Factory: ``PveEmulator(<tmp>/pveN, auth_delay=0, **kwargs)`` on a free port; every one
    started is stopped after the test."""
    made: list[PveEmulator] = []

    def start(**kwargs: Any) -> PveEmulator:
        emu = PveEmulator(tmp_path / f"pve{len(made)}", **{"auth_delay": 0.0, **kwargs})
        made.append(emu.start(port=0))
        return emu

    yield start
    for emu in made:
        emu.stop()


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[PveEmulator]:
    emu = make_emulator(tmp_path / "pve9")
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emulator8(tmp_path: Path) -> Iterator[PveEmulator]:
    emu = make_emulator(tmp_path / "pve8", version="8.4")
    try:
        yield emu
    finally:
        emu.stop()
