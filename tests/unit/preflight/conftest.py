"""Fixtures: the PVE API emulator (``start_emulator``, from ``tests/sandbox/pve/fixtures.py``)."""

from __future__ import annotations

from tests.sandbox.pve.fixtures import start_emulator

__all__ = ["start_emulator"]
