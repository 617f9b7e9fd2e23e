"""An empty emulated Proxmox node with real sandbox containers behind it, set up for a test
that deploys to it: the e2e tests' ``empty_node`` fixture (``tests/e2e/conftest.py``)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.sandbox import container as sandbox_container
from tests.sandbox import site
from tests.sandbox.app import site as app_site
from tests.sandbox.pve import site as pve_site
from tests.sandbox.pve.sandbox_backend import SandboxBackend

VMID = 100
"""The container the deploy's settings name (``ct_vmid``'s default)."""
_counter = itertools.count()


class DeploySite:
    """A node, its containers and a hosts file pointing the deploy at them."""

    def __init__(self, node: pve_site.Node, backend: SandboxBackend, env: Path, tmp: Path):
        self.node, self.backend, self.env, self.tmp = node, backend, env, tmp

    def hosts(self, **overrides: Any) -> Path:
        data = {**site.settings(self.env), **pve_site.settings(self.node, **overrides)}
        return site.write_hosts_file(self.tmp / "hosts.json", [("egograph-prod", data)])

    def state(self) -> dict[str, Any]:
        """The emulator's whole state (containers, tasks, …)."""
        return dict(self.node.admin("state"))

    def task_types(self) -> list[str]:
        return [t["type"] for t in self.state()["tasks"]]

    def snapshots(self, vmid: int = VMID) -> list[str]:
        listed = self.node.api(f"/nodes/pve/lxc/{vmid}/snapshot")
        return sorted(str(s["name"]) for s in listed if s["name"] != "current")

    def container(self, vmid: int = VMID) -> sandbox_container.Container:
        return sandbox_container.get(self.backend.name(vmid))

    def health(self) -> dict[str, Any]:
        """The backend's ``/health``, asked from inside the container."""
        out = self.container().ssh("curl -fsS http://127.0.0.1:8000/health").stdout
        return dict(json.loads(out))

    def head(self) -> str:
        """The commit checked out in the container."""
        return self.container().ssh("git -C /opt/egograph/repo rev-parse HEAD").stdout.strip()


@contextlib.contextmanager
def empty_nodes(env: Path, tmp: Path) -> Iterator[Callable[..., DeploySite]]:
    """A factory of empty nodes (no containers, no templates; ``version`` the PVE API
    schema, 9.1 by default), each torn down with its containers at the end. The fixture
    app is published pristine before and after: a test may leave another release."""
    app_site.publish_app("fixture")
    made: list[DeploySite] = []

    def make(version: str = "9.1") -> DeploySite:
        prefix = f"p{os.getpid() % 1000}{next(_counter)}x"
        node = pve_site.start_node(tmp / f"pve-{prefix}", version=version, prefix=prefix)
        made.append(DeploySite(node, SandboxBackend(prefix), env, tmp))
        return made[-1]

    try:
        yield make
    finally:
        for s in made:
            s.backend.tear_down(s.node)
        app_site.publish_app("fixture")
