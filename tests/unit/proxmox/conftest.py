"""Fixtures: a PVE API emulator on 127.0.0.1 (free port) per test, plus client factories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from deploys.proxmox.client import PveClient
from tests.sandbox.pve.emulator import PveEmulator

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


@pytest.fixture
def client_factory(emulator: PveEmulator) -> Callable[..., PveClient]:
    def factory(**kwargs: Any) -> PveClient:
        opts: dict[str, Any] = {
            "ca_bundle": emulator.ca_path,
            "retry_backoff": 0.01,
            "poll_interval": 0.05,
        }
        if "user" not in kwargs:
            opts.update(token_id=DEPLOY_TOKEN, token_secret=DEPLOY_SECRET)
        opts.update(kwargs)
        return PveClient(emulator.host, **opts)

    return factory


@pytest.fixture
def client(client_factory: Callable[..., PveClient]) -> PveClient:
    return client_factory()


class Raw:
    """Direct HTTP access to an emulator, to check status, reason phrase and body exactly."""

    def __init__(self, emu: PveEmulator, token: str = DEPLOY_TOKEN, secret: str = DEPLOY_SECRET):
        self.emu = emu
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"PVEAPIToken={token}={secret}"

    def call(
        self, method: str, path: str, data: Any = None, params: Any = None, **kw: Any
    ) -> requests.Response:
        return self.session.request(
            method,
            self.emu.api_url + path,
            data=data,
            params=params,
            verify=str(self.emu.ca_path),
            timeout=10,
            **kw,
        )


class Creds:
    """Constants for tests (test modules do not import each other or conftest)."""

    ROOT_PASSWORD = ROOT_PASSWORD
    DEPLOY_TOKEN = DEPLOY_TOKEN
    DEPLOY_SECRET = DEPLOY_SECRET
    AUDIT_TOKEN = AUDIT_TOKEN
    AUDIT_SECRET = AUDIT_SECRET
    ROOT_TOKEN = ROOT_TOKEN
    ROOT_TOKEN_SECRET = ROOT_TOKEN_SECRET
    UBUNTU = UBUNTU


@pytest.fixture
def creds() -> type[Creds]:
    return Creds


@pytest.fixture
def raw_factory() -> Callable[..., Raw]:
    return Raw


@pytest.fixture
def raw(emulator: PveEmulator) -> Raw:
    return Raw(emulator)


@pytest.fixture
def raw_root_token(emulator: PveEmulator) -> Raw:
    return Raw(emulator, ROOT_TOKEN, ROOT_TOKEN_SECRET)


@pytest.fixture
def raw8(emulator8: PveEmulator) -> Raw:
    return Raw(emulator8)
