"""The container's and the Proxmox node's settings (runbook §1-2), and the rules across
them, checked only when the Proxmox stage runs."""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common.checks import (
    ENV_KEY,
    FINGERPRINT,
    HOSTNAME,
    NET_HOST,
    STORAGE_ID,
    TOKEN_ID,
    int_range,
    is_abs_path,
    is_bool,
    is_ipv4,
    is_ipv4_cidr,
    list_of,
    matches,
    one_of,
    optional_text,
)
from ..common.secrets import private_key_problem, secret_file_problem
from ..common.setting import setting


@dataclass(frozen=True)
class ContainerSettings:
    """The container's spec (runbook §1), as the Proxmox stage creates and keeps it."""

    ct_hostname: str = setting(
        "egograph-prod",
        form="a DNS label: lowercase letters, digits and '-', 1-63 chars",
        doc="Container hostname (also the Tailscale name)",
        check=matches(HOSTNAME),
    )
    ct_ostemplate: str = setting(
        "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
        form="a template file name such as 'ubuntu-24.04-standard_24.04-2_amd64.tar.zst'",
        doc="OS template for the container",
        check=matches(re.compile(r"^[A-Za-z0-9._+-]+\.tar(\.(gz|xz|zst|bz2))?$")),
    )
    ct_cores: int = setting(
        2,
        form="an integer from 1 to 8192",
        doc="vCPUs",
        check=int_range(1, 8192),
    )
    ct_memory_mb: int = setting(
        3072,
        form="an integer (MiB) from 16 to 4194304",
        doc="Memory in MiB",
        check=int_range(16, 4194304),
    )
    ct_swap_mb: int = setting(
        1024,
        form="an integer (MiB) from 0 to 4194304",
        doc="Swap in MiB",
        check=int_range(0, 4194304),
    )
    ct_disk_gb: int = setting(
        40,
        form="an integer (GiB) from 1 to 131072",
        doc="Root disk size in GiB",
        check=int_range(1, 131072),
    )
    ct_vmid: int = setting(
        0,
        form="0 (find the container by ct_hostname; a new one gets the next free id) or an "
        "integer from 100 to 999999999",
        doc="Container id on Proxmox",
        check=lambda v: v == 0 or int_range(100, 999999999)(v),
    )
    ct_storage: str = setting(
        "local-lvm",
        form="a PVE storage id, e.g. 'local-lvm'",
        doc="Storage the root disk is allocated on (content type rootdir)",
        check=matches(STORAGE_ID),
    )
    ct_template_storage: str = setting(
        "local",
        form="a PVE storage id, e.g. 'local'",
        doc="Storage holding OS templates (content type vztmpl); a missing template is "
        "downloaded there through the node's appliance index (aplinfo)",
        check=matches(STORAGE_ID),
    )
    ct_bridge: str = setting(
        "vmbr0",
        form="a bridge name, e.g. 'vmbr0'",
        doc="Bridge of net0 (eth0)",
        check=matches(re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")),
    )
    ct_ip: str = setting(
        "dhcp",
        form="'dhcp' or an IPv4 address with prefix, e.g. '192.168.1.50/24'",
        doc="Address of eth0; with 'dhcp' the deploy reads it from the API once the container runs",
        check=lambda v: v == "dhcp" or is_ipv4_cidr(v),
    )
    ct_gw: str = setting(
        "",
        form="'' or an IPv4 address in ct_ip's subnet (only with a static ct_ip)",
        doc="Default gateway of eth0",
        check=lambda v: v == "" or is_ipv4(v),
    )
    ct_nesting: bool = setting(
        True,
        form="True or False",
        doc="features: nesting=1 (systemd 255 in Ubuntu 24.04 needs it; the one feature an API "
        "token may set)",
        check=is_bool,
    )
    ct_onboot: bool = setting(
        True,
        form="True or False",
        doc="Start the container when the node boots",
        check=is_bool,
    )
    ct_ssh_public_keys: list[str] = setting(
        ["~/.ssh/id_ed25519.pub"],
        form="a list of OpenSSH public key files on the controller, e.g. ['~/.ssh/id_ed25519.pub']",
        doc="Keys root may log in with, installed when the container is created (the deploy "
        "reaches the container over SSH with them)",
        check=list_of(lambda v: isinstance(v, str) and bool(v) and "\n" not in v),
    )
    ct_ssh_known_hosts: str = setting(
        "~/.config/egograph-deploy/known_hosts",
        form="a file path on the controller (made, 0600, when missing)",
        doc="known_hosts the deploy manages for the containers it reaches: a container's "
        "ed25519 host key is read through the node (pct exec over pve_ssh_*) and pinned here "
        "before the first SSH contact; SSH to it is then strict. A changed key stops the run",
        check=lambda v: isinstance(v, str) and bool(v.strip()) and "\n" not in v,
    )
    ct_tun_method: str = setting(
        "raw",
        form="'raw', 'dev' or 'none'",
        doc="How the container gets /dev/net/tun (runbook §2): raw = lxc.cgroup2/lxc.mount.entry "
        "lines in the node's conf file over SSH; dev = dev0: /dev/net/tun through the API "
        "(PVE >= 8.1, root@pam password login only); none = no device (Tailscale in userspace "
        "networking)",
        check=one_of("raw", "dev", "none"),
    )
    ct_apparmor_unconfined: bool = setting(
        False,
        form="True or False",
        doc="raw method: also add lxc.apparmor.profile: unconfined",
        check=is_bool,
    )
    ct_allow_restart: bool = setting(
        False,
        form="True or False",
        doc="Restart a running container to apply settings PVE keeps pending until the next start "
        "(e.g. features). A changed TUN config always restarts it",
        check=is_bool,
    )


@dataclass(frozen=True)
class ProxmoxSettings:
    """How the deploy reaches the Proxmox node (runbook §1-2): its API, and its SSH (a new container's host key is read there; the raw TUN method edits the conf file there). ``pve_host`` '' skips the Proxmox stage: the deploy then targets an existing container over SSH."""

    pve_host: str = setting(
        "",
        form="'' (no Proxmox stage) or the API host name or IP address",
        doc="Proxmox VE API host; '' = deploy into an existing container only",
        check=lambda v: v == "" or (isinstance(v, str) and bool(NET_HOST.match(v))),
    )
    pve_port: int = setting(
        8006,
        form="an integer from 1 to 65535",
        doc="API port",
        check=int_range(1, 65535),
    )
    pve_node: str = setting(
        "",
        form="'' (the cluster's only node) or a node name",
        doc="Node the container lives on",
        check=lambda v: v == "" or matches(HOSTNAME)(v),
    )
    pve_token_id: str = setting(
        "deploy@pve!egograph",
        form="'' (password login as pve_user) or an API token id 'user@realm!name'",
        doc="API token the deploy authenticates with (see the README for its role)",
        check=lambda v: v == "" or matches(TOKEN_ID)(v),
    )
    pve_user: str = setting(
        "root@pam",
        form="a user 'name@realm'",
        doc="User of a password login, used when pve_token_id is '' (ct_tun_method 'dev' needs "
        "root@pam)",
        check=matches(re.compile(r"^[^\s!@:]+@[A-Za-z][A-Za-z0-9.\-_]*$")),
    )
    pve_secret_source: dict[str, str] = setting(
        {"environ": "PVE_TOKEN_SECRET"},
        form="{'environ': 'VARIABLE'} or {'file': 'path on the controller'}",
        doc="Where the token secret (or the password) comes from; it is never stored or printed",
        check=lambda v: (
            isinstance(v, dict)
            and len(v) == 1
            and (
                (isinstance(v.get("environ"), str) and bool(ENV_KEY.match(v["environ"])))
                or (isinstance(v.get("file"), str) and bool(v["file"]))
            )
        ),
    )
    pve_ca_bundle: str = setting(
        "",
        form="'' (the system trust store) or a PEM file on the controller",
        doc="CA the API certificate is verified against: the node's /etc/pve/pve-root-ca.pem",
        check=optional_text,
    )
    pve_fingerprint: str = setting(
        "",
        form="'' or a SHA-256 certificate fingerprint (64 hex digits, ':' allowed)",
        doc="Pins the API certificate (Datacenter > node > Certificates shows it)",
        check=lambda v: v == "" or (isinstance(v, str) and bool(FINGERPRINT.match(v))),
    )
    pve_insecure: bool = setting(
        False,
        form="True or False",
        doc="Switch TLS verification off (warns on every run; anyone on the path can read the token)",
        check=is_bool,
    )
    pve_timeout: int = setting(
        30,
        form="an integer number of seconds from 30 to 600",
        doc="Timeout of one API request",
        check=int_range(30, 600),
    )
    pve_task_timeout: int = setting(
        600,
        form="an integer number of seconds from 10 to 7200",
        doc="How long a task (create, start, template download) and the wait for the container's "
        "address and SSH may take",
        check=int_range(10, 7200),
    )
    pve_ssh_host: str = setting(
        "",
        form="'' (= pve_host) or a host name or IP address",
        doc="The node over SSH: the deploy reads a new container's host key there (pct exec), "
        "and ct_tun_method 'raw' edits the container's conf file there",
        check=lambda v: v == "" or (isinstance(v, str) and bool(NET_HOST.match(v))),
    )
    pve_ssh_port: int = setting(
        22,
        form="an integer from 1 to 65535",
        doc="SSH port of the node",
        check=int_range(1, 65535),
    )
    pve_ssh_user: str = setting(
        "root",
        form="a user name",
        doc="SSH user on the node (root: /etc/pve is root's)",
        check=matches(re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")),
    )
    pve_ssh_key: str = setting(
        "",
        form="'' (SSH's defaults) or a private key file on the controller (mode 0600)",
        doc="Key for the node",
        check=optional_text,
    )
    pve_ssh_known_hosts: str = setting(
        "",
        form="'' (~/.ssh/known_hosts) or a known_hosts file on the controller",
        doc="The node's host key is checked against this file (never accepted blindly)",
        check=optional_text,
    )
    pve_conf_dir: str = setting(
        "/etc/pve/lxc",
        form="an absolute path",
        doc="Directory of the container conf files on the node",
        check=is_abs_path,
    )
    pve_snapshot_before_release: bool = setting(
        True,
        form="True or False",
        doc="Take a container snapshot named after the commit (egograph_<commit12>) before a "
        "release that changes the code, the dependencies or a unit/env file (not before the "
        "first one); the release stops when it fails (see pve_snapshot_unsupported_ok)",
        check=is_bool,
    )
    pve_snapshot_keep: int = setting(
        3,
        form="an integer from 1 to 100",
        doc="How many of the deploy's own snapshots (egograph_*) to keep: after taking one, the "
        "oldest beyond this are deleted (other snapshots are never touched)",
        check=int_range(1, 100),
    )
    pve_snapshot_unsupported_ok: bool = setting(
        False,
        form="True or False",
        doc="When the container's storage cannot snapshot (the API's feature check, e.g. a raw "
        "volume on dir storage): False stops the release before the checkout moves; True "
        "releases without a snapshot, with a warning",
        check=is_bool,
    )


def proxmox_errors(data: Mapping[str, Any]) -> list[str]:
    """Checks across the Proxmox settings, and of the controller-side files they name; only
    when the Proxmox stage runs (pve_host set)."""
    errors = address_errors(data)
    if not data.get("pve_host"):
        return errors
    source = data["pve_secret_source"]
    if "environ" in source and not os.environ.get(source["environ"]):
        errors.append(
            f"pve_secret_source: controller environment variable {source['environ']} is unset "
            "or empty; expected the API token secret (or password) in it"
        )
    if "file" in source and (problem := secret_file_problem(source["file"])):
        errors.append(f"pve_secret_source: {problem}")
    if data["pve_ca_bundle"] and (problem := ca_bundle_problem(data["pve_ca_bundle"])):
        errors.append(f"pve_ca_bundle: {problem}")
    if data["pve_ssh_key"] and (problem := private_key_problem(data["pve_ssh_key"])):
        errors.append(f"pve_ssh_key: {problem}")
    if data["ct_tun_method"] == "dev" and data["pve_token_id"]:
        errors.append(
            "ct_tun_method: 'dev' needs a root@pam password login (PVE refuses dev0 to every "
            "API token: 'only allowed for root@pam'); set pve_token_id to '' and pve_user to "
            "'root@pam', or use 'raw'"
        )
    if (
        data["ct_tun_method"] == "none"
        and data.get("tailscale_enabled")
        and not data.get("tailscale_userspace")
    ):
        errors.append(
            "ct_tun_method: 'none' leaves the container without /dev/net/tun, where tailscaled "
            "cannot start; expected tailscale_userspace = True with it (or 'raw'/'dev')"
        )
    keys = data["ct_ssh_public_keys"]
    if not keys:
        errors.append(
            "ct_ssh_public_keys: empty; expected at least one public key file (the deploy "
            "logs into the new container with it)"
        )
    errors += [f"ct_ssh_public_keys: {p}" for p in map(public_key_problem, keys) if p]
    return errors


def public_key_problem(path: str) -> str | None:
    """What is wrong with a public key file of ``ct_ssh_public_keys`` (missing, or not an
    OpenSSH public key), or None."""
    p = Path(path).expanduser()
    if not p.is_file():
        return f"{path!r} does not exist on the controller"
    if not p.read_text(encoding="utf-8", errors="replace").startswith(("ssh-", "ecdsa-", "sk-")):
        return f"{path!r} is not an OpenSSH public key"
    return None


def ca_bundle_problem(path: str) -> str | None:
    """What is wrong with ``pve_ca_bundle``'s file (missing, or no PEM certificate that
    TLS verification could use), or None: checked before the API is contacted, by the
    settings validation and ``egodeploy preflight`` alike."""
    fix = "copy the node's /etc/pve/pve-root-ca.pem to the controller and name it here"
    if not Path(path).expanduser().is_file():
        return f"file {path!r} does not exist on the controller; expected the node's CA: {fix}"
    try:
        # the same loader requests hands the file to (ssl's load_verify_locations)
        ssl.create_default_context(cafile=str(Path(path).expanduser()))
    except (ssl.SSLError, OSError, ValueError) as exc:
        return f"file {path!r} holds no usable PEM certificate ({exc}); {fix}"
    return None


def address_errors(data: Mapping[str, Any]) -> list[str]:
    """eth0's gateway against its address: one PVE would write into the container but that
    the container could not reach as a neighbour. Checked with or without a node (these
    settings' forms are already valid here)."""
    ip, gw = data["ct_ip"], data["ct_gw"]
    if not gw:
        return []
    if ip == "dhcp":
        return ["ct_gw: a gateway needs a static ct_ip; expected '' with 'dhcp'"]
    address = ipaddress.IPv4Interface(ip)
    if ipaddress.IPv4Address(gw) not in address.network:
        return [
            f"ct_gw: got {gw!r}, outside ct_ip's subnet {address.network}; expected an "
            f"address in {address.network} (or '' for no gateway)"
        ]
    if ipaddress.IPv4Address(gw) == address.ip:
        return [f"ct_gw: got {gw!r}, ct_ip's own address; expected the subnet's router"]
    return []
