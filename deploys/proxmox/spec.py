"""What the container should look like (runbook §1), and how that compares to what PVE says.

:class:`ContainerSpec` is built once per run from the container's settings; then pure
functions: the spec in, API parameters out; a config from ``GET …/config`` in, the
parameters to ``PUT`` out. Property strings (``net0``, ``features``) are compared as
key/value sets, so PVE's reordering and the keys it fills in (``hwaddr``, ``type``) never
count as a difference.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import ContainerSettings


TUN_DEVICE = "/dev/net/tun"

MARKER_TAG = "egograph-deploy"
"""The tag a container this deploy created carries from its create on: ``deploys/destroy.py``
destroys nothing without it. A tag, because PVE keeps it through every config change and
lists it in ``/cluster/resources`` and the GUI; the deploy never adds it to a container it
found (pve-api NOTES.md §1: tags are a ``pve-tag-list``, stored lowercased and sorted)."""

_RECORD = re.compile(r"^egograph-deploy\.([a-z0-9-]+): (\S+)$")


@dataclass(frozen=True)
class ContainerSpec:
    """The container of runbook §1 as the create (``POST /nodes/{node}/lxc``) and the config
    ``PUT`` need it: built once per run from the container's settings (the public keys read
    from their files then)."""

    hostname: str
    template_storage: str
    template: str
    cores: int
    memory_mb: int
    swap_mb: int
    storage: str
    disk_gb: int
    bridge: str
    ip: str
    gw: str
    nesting: bool
    onboot: bool
    ssh_public_keys: str

    @classmethod
    def from_settings(cls, settings: ContainerSettings) -> ContainerSpec:
        return cls(
            hostname=settings.ct_hostname,
            template_storage=settings.ct_template_storage,
            template=settings.ct_ostemplate,
            cores=settings.ct_cores,
            memory_mb=settings.ct_memory_mb,
            swap_mb=settings.ct_swap_mb,
            storage=settings.ct_storage,
            disk_gb=settings.ct_disk_gb,
            bridge=settings.ct_bridge,
            ip=settings.ct_ip,
            gw=settings.ct_gw,
            nesting=settings.ct_nesting,
            onboot=settings.ct_onboot,
            ssh_public_keys=public_keys(settings.ct_ssh_public_keys),
        )

    @property
    def ostemplate(self) -> str:
        """The template's volume id, ``<storage>:vztmpl/<file>``."""
        return f"{self.template_storage}:vztmpl/{self.template}"


def parse_props(text: str | None, default_key: str | None = None) -> dict[str, str]:
    """``a=1,b=2`` → ``{"a": "1", "b": "2"}``; a bare first value goes to ``default_key``."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            if default_key is None:
                raise ValueError(f"not a key=value pair: {part!r}")
            key, value = default_key, part
        out[key] = value
    return out


def print_props(props: Mapping[str, str], first: str | None = None) -> str:
    """Inverse of :func:`parse_props`: ``first`` leads, the other keys sorted (PVE's order)."""
    keys = sorted(props)
    if first is not None and first in props:
        keys.remove(first)
        keys.insert(0, first)
    return ",".join(f"{k}={props[k]}" for k in keys)


def net0_props(spec: ContainerSpec) -> dict[str, str]:
    props = {"name": "eth0", "bridge": spec.bridge, "ip": spec.ip}
    if spec.gw:
        props["gw"] = spec.gw
    return props


def public_keys(paths: list[str]) -> str:
    """The ``ssh-public-keys`` parameter: every key file's lines, one key per line."""
    lines: list[str] = []
    for path in paths:
        text = Path(path).expanduser().read_text(encoding="utf-8")
        lines += [ln.strip() for ln in text.splitlines() if ln.strip()]
    return "\n".join(lines) + "\n"


def create_params(spec: ContainerSpec, vmid: int) -> dict[str, Any]:
    """``POST /nodes/{node}/lxc`` for the runbook's container (not started: TUN comes first)."""
    params: dict[str, Any] = {
        "vmid": vmid,
        "ostemplate": spec.ostemplate,
        "hostname": spec.hostname,
        "cores": spec.cores,
        "memory": spec.memory_mb,
        "swap": spec.swap_mb,
        "rootfs": f"{spec.storage}:{spec.disk_gb}",
        "net0": print_props(net0_props(spec), first="name"),
        # Explicit on every version: the API default was privileged up to PVE 8.
        "unprivileged": True,
        "onboot": spec.onboot,
        "start": False,
        "ssh-public-keys": spec.ssh_public_keys,
        "tags": MARKER_TAG,
        "description": creation_record(spec),
    }
    if spec.nesting:
        params["features"] = "nesting=1"
    return params


def config_changes(spec: ContainerSpec, config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``PUT …/config`` parameters that bring ``config`` (pending merged) to the spec.

    Only what the spec owns is compared. Keys PVE fills in or the admin added (the MAC
    address, other feature flags, raw ``lxc.*`` lines) are kept as they are.
    """
    changes: dict[str, Any] = {}
    for key, want in (
        ("hostname", spec.hostname),
        ("cores", spec.cores),
        ("memory", spec.memory_mb),
        ("swap", spec.swap_mb),
        ("onboot", 1 if spec.onboot else 0),
    ):
        have = config.get(key)
        default = 0 if key == "onboot" else None
        if str(have if have is not None else default) != str(want):
            changes[key] = want

    net = parse_props(str(config.get("net0") or ""))
    wanted_net = net0_props(spec)
    merged = {k: v for k, v in net.items() if not (k == "gw" and "gw" not in wanted_net)}
    merged.update(wanted_net)
    if merged != net:
        changes["net0"] = print_props(merged, first="name")

    features = parse_props(str(config.get("features") or ""))
    wanted_features = dict(features)
    if spec.nesting:
        wanted_features["nesting"] = "1"
    else:
        wanted_features.pop("nesting", None)
    if _truthy_props(wanted_features) != _truthy_props(features):
        if wanted_features:
            changes["features"] = print_props(wanted_features)
        else:
            changes["delete"] = "features"
    return changes


def _truthy_props(props: Mapping[str, str]) -> dict[str, str]:
    # nesting=0 and an absent nesting mean the same
    return {k: v for k, v in props.items() if v not in ("0", "")}


def creation_record(spec: ContainerSpec) -> str:
    """The container's description at its create: what PVE takes only then and does not
    keep in the config (the template, the public keys: PVE writes those into the
    container's ``authorized_keys``), so a later run can tell that a setting changed."""
    return (
        f"Created by egograph-deploy (tag {MARKER_TAG}: deploys/destroy.py may destroy it).\n"
        f"egograph-deploy.template: {spec.ostemplate}\n"
        f"egograph-deploy.ssh-keys-sha256: {keys_digest(spec.ssh_public_keys)}\n"
    )


def keys_digest(keys: str) -> str:
    return hashlib.sha256(keys.encode()).hexdigest()


def tags_of(config: Mapping[str, Any]) -> list[str]:
    """The container's tags (PVE's separators: ``;``, ``,`` or space)."""
    return [t for t in re.split(r"[;, ]+", str(config.get("tags") or "")) if t]


def is_marked(config: Mapping[str, Any]) -> bool:
    """Whether this deploy created the container (its :data:`MARKER_TAG`)."""
    return MARKER_TAG in (t.lower() for t in tags_of(config))


def creation_only_differences(spec: ContainerSpec, config: Mapping[str, Any]) -> list[str]:
    """Settings that differ from the existing container but apply only when one is created
    (root disk size and storage, template, public keys): the deploy cannot apply them, so
    each is said, never passed over as in sync."""
    out: list[str] = []
    rootfs = parse_props(str(config.get("rootfs") or ""), default_key="volume")
    storage = rootfs.get("volume", "").split(":", 1)[0]
    if storage and storage != spec.storage:
        out.append(
            f"ct_storage is {spec.storage!r} but the root disk is on {storage!r} (used only "
            "at creation; move it with pct move-volume, or recreate the container)"
        )
    size = _gib(rootfs.get("size", ""))
    if size is not None and size != spec.disk_gb:
        out.append(
            f"ct_disk_gb is {spec.disk_gb} but the root disk is {rootfs['size']} (used only at "
            "creation; grow it with pct resize <vmid> rootfs <size>G, or recreate it)"
        )
    record = creation_record_of(config)
    if not record:
        return out  # unknown, not different: see unrecorded()
    # the file decides: the same template on another ct_template_storage is the same OS
    if str(record.get("template")).rsplit("/", 1)[-1] != spec.template:
        out.append(
            f"ct_ostemplate is {spec.ostemplate!r} but the container was created from "
            f"{record.get('template')!r} (used only at creation: recreate the container)"
        )
    if record.get("ssh-keys-sha256") != keys_digest(spec.ssh_public_keys):
        out.append(
            "ct_ssh_public_keys differ from the keys the container was created with (PVE "
            "installs them only at creation: add them to /root/.ssh/authorized_keys in it)"
        )
    return out


def creation_record_of(config: Mapping[str, Any]) -> dict[str, str]:
    """The creation record's ``key: value`` lines from the description ({} if none)."""
    return {
        m.group(1): m.group(2)
        for line in str(config.get("description") or "").splitlines()
        if (m := _RECORD.match(line.strip()))
    }


def unrecorded(config: Mapping[str, Any]) -> str | None:
    """What cannot be compared on a container without a creation record (one the deploy
    found, or made before it kept one): said, but not drift, since nothing is known to
    differ."""
    if creation_record_of(config):
        return None
    return (
        "ct_ostemplate and ct_ssh_public_keys are not compared: the container's description "
        "has no creation record (it was not created by this version of the deploy)"
    )


def _gib(size: str) -> float | None:
    """``40G``/``512M``/``1T`` (PVE's disk sizes) in GiB; None when absent or unknown."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", size)
    if not m:
        return None
    scale = {"K": 1 / 1024**2, "M": 1 / 1024, "G": 1, "T": 1024, "": 1 / 1024**3}
    return float(m.group(1)) * scale[m.group(2)]


def is_unprivileged(config: Mapping[str, Any]) -> bool:
    return str(config.get("unprivileged", 0)) == "1"


def tun_dev_key(config: Mapping[str, Any]) -> str | None:
    """The ``devN`` key passing ``/dev/net/tun`` through, if any."""
    for key, value in config.items():
        if key.startswith("dev") and key[3:].isdigit():
            path = parse_props(str(value), default_key="path").get("path")
            if path == TUN_DEVICE:
                return key
    return None


def free_dev_key(config: Mapping[str, Any]) -> str:
    used = {k for k in config if k.startswith("dev") and k[3:].isdigit()}
    return next(f"dev{i}" for i in range(256) if f"dev{i}" not in used)


def pending_keys(pending: list[dict[str, Any]]) -> list[str]:
    """Keys with a value waiting in ``[pve:pending]`` (``GET …/pending``)."""
    return sorted(str(item["key"]) for item in pending if "pending" in item or item.get("delete"))


def eth0_address(interfaces: list[dict[str, Any]] | None) -> str | None:
    """eth0's IPv4 address from ``GET …/interfaces`` (None while stopped or unassigned)."""
    for item in interfaces or []:
        if item.get("name") != "eth0":
            continue
        for addr in item.get("ip-addresses") or []:
            ip = str(addr.get("ip-address", ""))
            if addr.get("ip-address-type") == "inet" and ip and not ip.startswith("169.254."):
                return ip
        inet = item.get("inet")
        if inet:
            return str(inet).split("/", 1)[0]
    return None
