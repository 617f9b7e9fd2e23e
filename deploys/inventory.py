"""Hosts for ``inventory.py``, with every setting validated before pyinfra connects.

pyinfra connects to every host before it loads a deploy file, so a deploy file is too late
to refuse bad settings "before anything is touched". The inventory is the last thing
pyinfra runs before connecting: it merges the group data the way pyinfra will and stops
the run with every bad setting listed.
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any

from .settings import SETTINGS_BY_NAME, Settings, SettingsError, validate

GROUP = "egograph"
HOSTS_FILE_ENV = "EGOGRAPH_HOSTS_FILE"
DEFAULT_HOST = "egograph-prod"
ROLE = "egograph_role"
"""Host data key: ``pve-node`` for the Proxmox node; absent for the container."""
NODE_ROLE = "pve-node"


def _hosts_from_env() -> list[tuple[str, dict[str, Any]]]:
    path = os.environ.get(HOSTS_FILE_ENV)
    if not path:
        # Production: the container's tailnet name, SSH as root (runbook §6).
        return [(os.environ.get("EGOGRAPH_HOST", DEFAULT_HOST), {})]
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        return [(entry["name"], dict(entry.get("data", {}))) for entry in doc["hosts"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(
            f"{HOSTS_FILE_ENV}={path}: cannot read it ({exc}); expected JSON "
            '{"hosts": [{"name": "host", "data": {...}}]}'
        ) from exc


def load_group_file(path: Path) -> dict[str, Any]:
    """The data a group data file defines, as pyinfra reads it (imports left out)."""
    namespace: dict[str, Any] = {"__file__": str(path)}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    return {
        k: v
        for k, v in namespace.items()
        if not k.startswith("__")
        and not isinstance(v, types.ModuleType | types.FunctionType | type)
    }


def group_data(*dirs: Path) -> dict[str, Any]:
    """``all`` then ``egograph`` group data from each directory, later ones winning."""
    merged: dict[str, Any] = {}
    for d in dict.fromkeys(p.resolve() for p in dirs):
        for group in ("all", GROUP):
            if (d / f"{group}.py").is_file():
                merged.update(load_group_file(d / f"{group}.py"))
    return merged


def load_hosts(inventory_file: str) -> list[tuple[str, dict[str, Any]]]:
    """Return ``[(host, data)]``; exit with every bad setting listed if any is wrong."""
    hosts = _hosts_from_env()
    inventory_dir = Path(inventory_file).resolve().parent
    group = group_data(Path.cwd() / "group_data", inventory_dir / "group_data")
    problems: list[str] = []
    expanded: list[tuple[str, dict[str, Any]]] = []
    for name, data in hosts:
        try:
            settings = validate({**group, **data})
        except SettingsError as exc:
            problems += [f"  {name}: {e}" for e in exc.errors]
            continue
        for host in with_proxmox(name, data, settings):
            if host[0] not in {h[0] for h in expanded}:
                expanded.append(host)
    if problems:
        print("egograph-deploy: bad settings, nothing was touched:", file=sys.stderr)
        print("\n".join(problems), file=sys.stderr)
        raise SystemExit(2)
    return expanded


def with_proxmox(
    name: str, data: dict[str, Any], settings: Settings
) -> list[tuple[str, dict[str, Any]]]:
    """The hosts one deploy target becomes.

    Without Proxmox (``pve_host`` ''): the target itself, an existing container over SSH.
    With Proxmox: the node first (its operations create, patch and start the container),
    then the container as ``@pvelxc/<name>``, which connects on first use
    (:mod:`deploys.proxmox.connector`). The node is reached over SSH when the TUN method
    edits its conf file (``raw``), else it is ``@local`` (API calls only).
    """
    if not settings.pve_host:
        return [(name, data)]
    node_data: dict[str, Any] = {k: v for k, v in data.items() if k in SETTINGS_BY_NAME}
    node_data[ROLE] = NODE_ROLE
    if settings.ct_tun_method == "raw":
        node_name = settings.pve_ssh_host or settings.pve_host
        node_data.update(
            ssh_hostname=node_name,
            ssh_port=settings.pve_ssh_port,
            ssh_user=settings.pve_ssh_user,
            # the node's host key is always checked, never accepted blindly
            ssh_strict_host_key_checking="yes",
        )
        if settings.pve_ssh_key:
            node_data["ssh_key"] = str(Path(settings.pve_ssh_key).expanduser())
        if settings.pve_ssh_known_hosts:
            node_data["ssh_known_hosts_file"] = str(Path(settings.pve_ssh_known_hosts).expanduser())
    else:
        node_name = "@local"
    container = name if name.startswith("@pvelxc/") else f"@pvelxc/{name}"
    return [(node_name, node_data), (container, data)]
