"""Fixtures: a PVE API emulator on 127.0.0.1 (free port) per test (``emulator``,
``emulator8``, ``start_emulator``, from ``tests/sandbox/pve/fixtures.py``), and direct HTTP
access to it (``raw``, ``raw8``, ``raw_root_token``, ``raw_factory``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.sandbox.pve.emulator import PveEmulator
from tests.sandbox.pve.fixtures import (
    DEPLOY_SECRET,
    DEPLOY_TOKEN,
    ROOT_TOKEN,
    ROOT_TOKEN_SECRET,
    emulator,
    emulator8,
    start_emulator,
)

__all__ = ["emulator", "emulator8", "start_emulator"]  # the fixtures this directory's tests use


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
