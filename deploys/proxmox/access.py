"""The Proxmox API as the deploy uses it: a client from the settings, the container's
whereabouts, its address and the wait until it answers SSH.

Shared by the node's operations (:mod:`.operations`) and the container's lazy connector
(:mod:`.connector`); everything here runs on the controller.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pyinfra.api import HiddenValue
from pyinfra.context import ctx_state

from .client import ContainerRef, PveClient
from .errors import PveError
from .spec import eth0_address

if TYPE_CHECKING:
    from pyinfra.api.host import Host

    from ..settings import Settings

_CLIENTS = "_egograph_pve_clients"
"""Where a run keeps its API clients: on pyinfra's ``State`` of the run, which the node and
the container host share (a password login happens once per run, not once per host)."""
_LOCK = threading.Lock()
"""Guards creating that cache: hosts run in parallel greenlets."""


class ProxmoxError(Exception):
    """A Proxmox step failed; the message says what and what to do."""


@dataclass(frozen=True)
class Pve:
    """Connection and identity settings of one container on one PVE cluster (hashable)."""

    host: str
    port: int
    node: str
    token_id: str
    user: str
    secret_environ: str
    secret_file: str
    ca_bundle: str
    fingerprint: str
    insecure: bool
    timeout: int
    task_timeout: int
    vmid: int
    hostname: str
    static_ip: str
    known_hosts: str
    """The known_hosts file the deploy pins the container's host key in (expanded)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Pve:
        source = settings.pve_secret_source
        return cls(
            host=settings.pve_host,
            port=settings.pve_port,
            node=settings.pve_node,
            token_id=settings.pve_token_id,
            user=settings.pve_user,
            secret_environ=source.get("environ", ""),
            secret_file=source.get("file", ""),
            ca_bundle=settings.pve_ca_bundle,
            fingerprint=settings.pve_fingerprint,
            insecure=settings.pve_insecure,
            timeout=settings.pve_timeout,
            task_timeout=settings.pve_task_timeout,
            vmid=settings.ct_vmid,
            hostname=settings.ct_hostname,
            static_ip="" if settings.ct_ip == "dhcp" else settings.ct_ip.split("/", 1)[0],
            known_hosts=os.path.expanduser(settings.ct_ssh_known_hosts),
        )

    @property
    def host_key_tag(self) -> str:
        """The comment marking this container's lines in ``known_hosts``."""
        from .hostkey import container_tag

        return container_tag(self.host, self.hostname)

    def secret(self) -> HiddenValue:
        if self.secret_environ:
            value = os.environ.get(self.secret_environ, "")
            if not value:
                raise ProxmoxError(f"environment variable {self.secret_environ} is empty")
            return HiddenValue(value)
        text = Path(self.secret_file).expanduser().read_text(encoding="utf-8").strip()
        return HiddenValue(text)


def _run_cache() -> dict[tuple[object, ...], PveClient]:
    """The current run's clients (a fresh dict outside a pyinfra run: no cache)."""
    if not ctx_state.isset():
        return {}
    state = ctx_state.get()
    cache = getattr(state, _CLIENTS, None)
    if cache is None:
        cache = {}
        setattr(state, _CLIENTS, cache)
    return cache


def client(pve: Pve) -> PveClient:
    """One client per connection settings and run (a password login happens once)."""
    key = (pve.host, pve.port, pve.token_id, pve.user, pve.secret_environ, pve.secret_file,
           pve.ca_bundle, pve.fingerprint, pve.insecure, pve.timeout)  # fmt: skip
    with _LOCK:
        clients = _run_cache()
        found = clients.get(key)
        if found is not None:
            return found
        auth: dict[str, object]
        if pve.token_id:
            auth = {"token_id": pve.token_id, "token_secret": pve.secret()}
        else:
            auth = {"user": pve.user, "password": pve.secret()}
        made = PveClient(
            pve.host,
            port=pve.port,
            ca_bundle=pve.ca_bundle or None,
            fingerprint=pve.fingerprint or None,
            insecure=pve.insecure,
            timeout=float(pve.timeout),
            **auth,  # type: ignore[arg-type]
        )
        clients[key] = made
        return made


def node_name(pve: Pve) -> str:
    if pve.node:
        return pve.node
    nodes = [n["node"] for n in client(pve).nodes() if n.get("status", "online") == "online"]
    if len(nodes) != 1:
        raise ProxmoxError(
            f"pve_node is '' but the cluster has {len(nodes)} online nodes "
            f"({', '.join(nodes) or 'none'}); set pve_node"
        )
    return str(nodes[0])


def find(pve: Pve) -> ContainerRef | None:
    """The container by ``ct_vmid``, or by hostname cluster-wide when ``ct_vmid`` is 0."""
    api = client(pve)
    if pve.vmid:
        ref = api.find_container(vmid=pve.vmid)
        if ref is not None and ref.name not in (None, pve.hostname):
            raise ProxmoxError(
                f"CT {pve.vmid} exists but is called {ref.name!r}, not {pve.hostname!r}; "
                "check ct_vmid (the deploy never takes over another container)"
            )
        return ref
    try:
        return api.find_container(hostname=pve.hostname)
    except ValueError as exc:
        raise ProxmoxError(f"{exc}; set ct_vmid to pick one") from None


def address(pve: Pve, ref: ContainerRef) -> str | None:
    """The static address, or eth0's from ``/interfaces`` (None while stopped/unassigned)."""
    if pve.static_ip:
        return pve.static_ip
    return eth0_address(client(pve).interfaces(ref.node, ref.vmid))


def ssh_port_open(address: str, port: int = 22, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_reachable(pve: Pve, ref: ContainerRef, ssh_port: int) -> str:
    """Wait until the container runs, has an address and answers on its SSH port."""
    api = client(pve)
    deadline = time.monotonic() + pve.task_timeout
    state = "not running"
    while True:
        try:
            status = api.container_status(ref.node, ref.vmid).get("status")
            if status == "running":
                addr = address(pve, ref)
                if addr is None:
                    state = "running, eth0 has no IPv4 address yet"
                elif ssh_port_open(addr, ssh_port):
                    return addr
                else:
                    state = f"running at {addr}, SSH port {ssh_port} closed"
            else:
                state = f"status {status}"
        except PveError as exc:
            state = str(exc)
        if time.monotonic() >= deadline:
            raise ProxmoxError(f"CT {ref.vmid} not reachable after {pve.task_timeout}s ({state})")
        time.sleep(1.0)


@runtime_checkable
class ContainerHost(Protocol):
    """What the connector of an inventory host that is a Proxmox container tells the
    node's operations (:class:`.connector.PveContainerConnector`, a layer above): which
    container it is, and the SSH port it connects on."""

    @property
    def ssh_port(self) -> int: ...

    def pve(self) -> Pve: ...


def container_ssh_port(inventory: Iterable[Host], pve: Pve) -> int:
    """The SSH port of the inventory's host for ``pve``'s container, which the node's
    operations wait for after a start; 22 when the inventory has no such host."""
    for other in inventory:
        connector = other.connector
        if isinstance(connector, ContainerHost) and connector.pve() == pve:
            return connector.ssh_port
    return 22
