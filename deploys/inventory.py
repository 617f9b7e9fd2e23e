"""Hosts for ``inventory.py``, with every setting validated before pyinfra connects.

pyinfra connects to every host before it loads a deploy file, so a deploy file is too late
to refuse bad settings "before anything is touched". The inventory is the last thing
pyinfra runs before connecting: it merges the group data, the host's data and the run's
``--data`` overrides the way pyinfra will, stops the run with every bad setting listed
(unknown names too), and hands each host its validated settings (``SETTINGS_KEY``): the
deploy validates nothing again.
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any

from .common.roles import NODE_ROLE, ROLE
from .common.secrets import private_key_problem
from .settings import REMOVED_SETTINGS, SETTINGS_BY_NAME, Settings, SettingsError, validate

GROUP = "egograph"
HOSTS_FILE_ENV = "EGOGRAPH_HOSTS_FILE"
SETTINGS_KEY = "egograph_settings"
"""Host data key: the host's validated ``Settings``."""
DEFAULT_HOST = "egograph-prod"


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


def pyinfra_keys() -> frozenset[str]:
    """Host data keys that are pyinfra's, not settings: the SSH and Docker connectors' data
    (``ConnectorData`` in pyinfra/connectors/ssh.py and docker.py; the ``@pvelxc``
    connector takes the SSH ones) and the deploy's own role key. Keys starting with ``_``
    are pyinfra's global arguments."""
    from pyinfra.connectors.docker import ConnectorData as DockerData
    from pyinfra.connectors.ssh import ConnectorData as SSHData

    return frozenset({*SSHData.__annotations__, *DockerData.__annotations__, ROLE})


def settings_part(data: dict[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    """``data`` without pyinfra's own keys (``keys``, and ``_`` global arguments)."""
    return {k: v for k, v in data.items() if k not in keys and not k.startswith("_")}


def cli_data_overrides(argv: list[str]) -> dict[str, Any]:
    """The run's ``--data key=value`` overrides, parsed as pyinfra parses them
    (pyinfra_cli.cli ``_set_override_data``): pyinfra applies them after the inventory, so
    they are read here to be checked with the rest."""
    from pyinfra_cli.util import parse_cli_arg

    raw: dict[str, str] = {}
    for i, arg in enumerate(argv):
        if arg == "--data" and i + 1 < len(argv):
            text = argv[i + 1]
        elif arg.startswith("--data="):
            text = arg.removeprefix("--data=")
        else:
            continue
        key, sep, value = text.partition("=")
        if sep:
            raw[key] = value
    return {key: parse_cli_arg(value) for key, value in raw.items()}


def target_data(
    inventory_file: str, argv: list[str]
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Each deploy target as ``(name, its own data, its data merged as pyinfra will merge
    it)``: the group data, the hosts file's data, then the run's ``--data`` overrides."""
    inventory_dir = Path(inventory_file).resolve().parent
    group = group_data(Path.cwd() / "group_data", inventory_dir / "group_data")
    overrides = cli_data_overrides(argv)
    return [(name, data, {**group, **data, **overrides}) for name, data in _hosts_from_env()]


def load_hosts(inventory_file: str) -> list[tuple[str, dict[str, Any]]]:
    """Return ``[(host, data)]``, each host's data with its validated settings; exit with
    every bad setting listed if any is wrong (nothing has been touched then)."""
    keys = pyinfra_keys()
    problems: list[str] = []
    expanded: list[tuple[str, dict[str, Any]]] = []
    for name, data, merged in target_data(inventory_file, sys.argv):
        problems += [f"  {name}: {e}" for e in ssh_key_problems(merged)]
        try:
            settings = validate(settings_part(merged, keys))
        except SettingsError as exc:
            problems += [f"  {name}: {e}" for e in exc.errors]
            continue
        if settings.pve_host:
            problems += [f"  {name}: {e}" for e in pinned_host_key_conflicts(merged)]
        for host_name, host_data in with_proxmox(name, data, settings):
            if host_name not in {h[0] for h in expanded}:
                expanded.append((host_name, {**host_data, SETTINGS_KEY: settings}))
    if problems:
        print("egograph-deploy: bad settings, nothing was touched:", file=sys.stderr)
        print("\n".join(problems), file=sys.stderr)
        raise SystemExit(2)
    return expanded


def ssh_key_problems(data: dict[str, Any]) -> list[str]:
    """The host's SSH key (pyinfra's ``ssh_key`` data) must be a private key only its owner
    can read: paramiko, unlike OpenSSH, would use one open to others."""
    key = data.get("ssh_key")
    if not isinstance(key, str) or not key:
        return []
    problem = private_key_problem(key)
    return [f"ssh_key: {problem}"] if problem else []


CONTAINER_TRUST_KEYS = ("ssh_known_hosts_file", "ssh_strict_host_key_checking")


def pinned_host_key_conflicts(data: dict[str, Any]) -> list[str]:
    """With Proxmox, the container's host key is checked strictly against the file the
    deploy manages (``ct_ssh_known_hosts``, :mod:`deploys.proxmox.hostkey`): host data
    that names another file or policy would be ignored, so it is refused instead."""
    return [
        f"{key}: with pve_host set, the container's host key is read through the node and "
        "checked strictly against ct_ssh_known_hosts; expected no "
        f"{key} in the host's data (set ct_ssh_known_hosts to choose the file)"
        for key in CONTAINER_TRUST_KEYS
        if key in data
    ]


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
    node_data: dict[str, Any] = {
        k: v for k, v in data.items() if k in SETTINGS_BY_NAME or k in REMOVED_SETTINGS
    }
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
