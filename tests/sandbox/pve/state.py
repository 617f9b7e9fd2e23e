"""What the emulated node holds that every layer of :class:`.emulator.PveEmulator` reads."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .backend import ContainerBackend
from .errors import PveError
from .permissions import Rpc, UserCfg
from .schema import ApiSchema


class EmulatorState:
    """The node's state shared by the layers (auth, tasks, conf, storage, lxc, snapshot,
    cluster, server); :class:`.emulator.PveEmulator` sets it up. Each layer declares the state
    of its own."""

    state_dir: Path
    version: str
    schema: ApiSchema
    major: int
    node: str
    lock: threading.RLock
    backend: ContainerBackend
    user_cfg: UserCfg
    rpc: Rpc
    storages: dict[str, dict[str, Any]]
    ca_path: Path
    cert_path: Path
    key_path: Path
    fingerprint: str

    def _is_running(self, vmid: int) -> bool:
        return self.backend.status(vmid) == "running"

    def _storage(self, sid: str) -> dict[str, Any]:
        st = self.storages.get(sid)
        if st is None:
            raise PveError(500, f"storage '{sid}' does not exist")
        return st
