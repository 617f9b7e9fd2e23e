"""Fixtures: a PVE API emulator on 127.0.0.1 (free port) per test (``emulator``,
``start_emulator``, from ``tests/sandbox/pve/fixtures.py``), plus client factories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from deploys.proxmox.client import PveClient
from tests.sandbox.pve.emulator import PveEmulator
from tests.sandbox.pve.fixtures import (
    AUDIT_SECRET,
    AUDIT_TOKEN,
    DEPLOY_SECRET,
    DEPLOY_TOKEN,
    ROOT_PASSWORD,
    ROOT_TOKEN,
    ROOT_TOKEN_SECRET,
    UBUNTU,
    emulator,
    start_emulator,
)

__all__ = ["emulator", "start_emulator"]  # the fixtures this directory's tests use

NET0 = "name=eth0,bridge=vmbr0,ip=dhcp"


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


def create_container(client: PveClient, vmid: int, **extra: Any) -> str:
    """POST a small unprivileged Ubuntu CT ``ct<vmid>`` (``extra`` on top; None drops a
    key); its UPID."""
    params = {
        "vmid": vmid,
        "ostemplate": UBUNTU,
        "hostname": f"ct{vmid}",
        "rootfs": "local-lvm:8",
        "net0": NET0,
        "unprivileged": True,
        "features": "nesting=1",
    }
    params.update(extra)
    return client.create_container("pve", params)


@pytest.fixture
def create_ct() -> Callable[..., str]:
    """:func:`create_container`, for tests (test modules do not import conftest)."""
    return create_container


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
