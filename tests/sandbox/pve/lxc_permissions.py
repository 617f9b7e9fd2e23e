"""The code-level permission checks of the LXC endpoints (PERMISSIONS.md §2.8, §3, §4), the
ones the schema's declarative blocks do not show:

- :func:`check_ct_modify_config_perm`: the per-option privileges of create and ``PUT
  …/config`` (pve-container ``src/PVE/LXC.pm``);
- :func:`check_bridge_access` → :func:`check_vnet_access`: ``SDN.Use`` on the bridge (or its
  VLANs) of every ``netN`` (pve-container → pve-guest-common ``GuestHelpers.pm``);
- :func:`check_volume_access`: read access to a volume such as the ``ostemplate``
  (pve-storage ``src/PVE/Storage.pm``);
- :func:`assert_tag_permissions` (pve-guest-common ``GuestHelpers.pm``).

Each takes the :class:`~.permissions.Rpc` to check with and the caller's auth id; all of
them return at once for ``root@pam`` (a string test: a token of root is checked).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import PveError, perm_error
from .permissions import ROOT, Rpc
from .schema import ApiSchema, parse_property_string, split_list

CONFIG_PUT = "/nodes/{node}/lxc/{vmid}/config"

# A new volume in an LXC config is STORAGE:SIZE; a bare size does not match here (it is
# filled in with the default storage only later, in create_vm)
# (pve-container:src/PVE/LXC.pm:$NEW_DISK_RE).
NEW_DISK_RE = re.compile(r"^([^:\s]+):(\d+(\.\d+)?)$")


# ---------------------------------------------------------------------------- parsing


def parse_net(schema: ApiSchema, value: str) -> dict[str, Any]:
    """A ``netN`` property string (``PVE::LXC::Config::parse_lxc_network``)."""
    return parse_property_string(dict(schema.prop("PUT", CONFIG_PUT, "net0")["format"]), value)


def parse_features(schema: ApiSchema, value: str | None) -> dict[str, Any]:
    """``features`` (``PVE::LXC::Config::parse_features``); booleans as 0/1."""
    if not value:
        return {}
    return parse_property_string(dict(schema.prop("PUT", CONFIG_PUT, "features")["format"]), value)


def parse_mountpoint(schema: ApiSchema, key: str, value: str) -> tuple[str, dict[str, Any]]:
    """``rootfs``/``mpN`` → (type, parsed): ``device`` for ``/dev/...``, ``bind`` for another
    absolute path, else ``volume`` (``PVE::LXC::Config::classify_mountpoint``)."""
    base = "rootfs" if key == "rootfs" else "mp0"
    mp = parse_property_string(dict(schema.prop("PUT", CONFIG_PUT, base)["format"]), value)
    volume = str(mp.get("volume", ""))
    if volume.startswith("/dev/"):
        return "device", mp
    if volume.startswith("/"):
        return "bind", mp
    return "volume", mp


def trunk_tags(trunks: str) -> list[int]:
    """``10;20-22`` → [10, 20, 21, 22] (GuestHelpers.pm:get_tags_from_trunk; the LXC schema
    allows ids only, QEMU ranges too)."""
    tags: set[int] = set()
    for part in str(trunks).split(";"):
        low, _, high = part.partition("-")
        tags.update(range(int(low), int(high or low) + 1))
    return sorted(tags)


# --------------------------------------------------------------------------- volumes


def volume_type(storages: Mapping[str, Mapping[str, Any]], volid: str) -> tuple[str, int | None]:
    """(content type, owner vmid) of a volume id, as the storage plugin's ``parse_volname``
    reads it for the emulator's storages; an unknown storage dies like PVE's."""
    sid, _, name = volid.partition(":")
    if sid not in storages:
        raise PveError(500, f"storage '{sid}' does not exist")
    for kind in ("vztmpl", "iso", "import", "backup", "snippets"):
        if name.startswith(f"{kind}/"):
            m = re.search(r"vzdump-(?:lxc|qemu)-(\d+)-", name) if kind == "backup" else None
            return kind, int(m.group(1)) if m else None
    m = re.match(r"^(?:(\d+)/)?(?:vm|base|subvol)-(\d+)-disk-\d+", name)
    if m:
        return "images", int(m.group(2))
    raise PveError(500, f"unable to parse volume name '{name}'")


def check_volume_access(
    rpc: Rpc,
    authid: str,
    storages: Mapping[str, Mapping[str, Any]],
    vmid: int | None,
    volid: str,
    content_type: str | None,
) -> None:
    """Access to a volume (pve-storage:src/PVE/Storage.pm:check_volume_access)."""
    if not re.match(r"^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$", volid, re.IGNORECASE):
        # no trailing newline upstream, so Perl appends where it died (§2.8): the line of
        # that die in pve-storage 9.1.7 (0c56bad8) / 8.3.8 (1af4790d)
        if authid != ROOT:
            line = 651 if rpc.cfg.major >= 9 else 581
            raise PveError(
                500,
                "Only root can pass arbitrary filesystem paths. at "
                f"/usr/share/perl5/PVE/Storage.pm line {line}.",
            )
        return
    sid = volid.split(":", 1)[0]
    vtype, owner = volume_type(storages, volid)
    # 'images' is accepted where 'rootdir' is expected
    if (
        content_type
        and vtype != content_type
        and not (content_type, vtype) == ("rootdir", "images")
    ):
        raise PveError(
            500, f"unable to use volume {volid} - content type needs to be '{content_type}'"
        )
    storage = f"/storage/{sid}"
    if rpc.check(authid, storage, ["Datastore.Allocate"], noerr=True):
        return
    if vtype in ("iso", "vztmpl", "import"):
        rpc.check_any(authid, storage, ["Datastore.AllocateSpace", "Datastore.Audit"])
    elif owner is not None and vmid is not None and owner == vmid:
        return  # the guest's own volume
    elif vtype == "backup" and owner:
        rpc.check(authid, storage, ["Datastore.AllocateSpace"])
        rpc.check(authid, f"/vms/{owner}", ["VM.Backup"])
    elif vtype in ("images", "rootdir") and owner:
        rpc.check(authid, storage, ["Datastore.Audit"])
        rpc.check(authid, f"/vms/{owner}", ["VM.Config.Disk"])
    else:
        raise PveError(500, f"missing privileges to access {volid}")


def volume_visible(
    rpc: Rpc, authid: str, storages: Mapping[str, Mapping[str, Any]], volid: str
) -> bool:
    """``GET …/storage/{storage}/content`` lists a volume only when ``check_volume_access``
    passes; its errors are swallowed (pve-storage:src/PVE/API2/Storage/Content.pm:index)."""
    try:
        check_volume_access(rpc, authid, storages, None, volid, None)
    except PveError:
        return False
    return True


# --------------------------------------------------------------------------- bridges


def check_vnet_access(
    rpc: Rpc, authid: str, bridge: str, tag: Any = None, trunks: Any = None
) -> None:
    """``SDN.Use`` on ``/sdn/zones/{zone}/{bridge}``, or instead on ``…/{bridge}/{tag}`` and
    each trunk VLAN's path (pve-guest-common:src/PVE/GuestHelpers.pm:check_vnet_access). The
    zone is ``localnetwork``: the emulator has no SDN VNets, so every bridge is a plain
    Linux bridge."""
    zone = f"/sdn/zones/localnetwork/{bridge}"
    if tag:
        rpc.check(authid, f"{zone}/{tag}", ["SDN.Use"])
    if trunks:
        for vid in trunk_tags(trunks):
            rpc.check(authid, f"{zone}/{vid}", ["SDN.Use"])
    if not (tag or trunks):
        rpc.check(authid, zone, ["SDN.Use"])


def check_bridge_access(rpc: Rpc, authid: str, schema: ApiSchema, raw: str) -> None:
    """The bridge of one ``netN`` value (pve-container:src/PVE/LXC.pm:check_bridge_access)."""
    if authid == ROOT:
        return
    net = parse_net(schema, raw)
    bridge = net.get("bridge")
    if bridge is None:
        if schema.major >= 9:
            # 9 (pve-container >= 6.0.14) skips a NIC without a bridge. Its Perl `next` also
            # leaves the caller's option loop (PERMISSIONS.md §4, inferred); that quirk is
            # not copied: only this NIC's check is skipped.
            return
        # 8: check_vnet_access gets no name; SDN (installed by default) refuses it
        raise PveError(500, "no sdn vnet ID specified")
    check_vnet_access(rpc, authid, str(bridge), net.get("tag"), net.get("trunks"))


# --------------------------------------------------------------------------- options


def assert_tag_permissions(
    rpc: Rpc,
    authid: str,
    vmid: int,
    old: str | None,
    new: str | None,
    *,
    freeform: bool = True,
    registered: Iterable[str] = (),
) -> None:
    """``tags``: VM.Config.Options on ``/vms/{vmid}`` (no pool fallback), then every tag
    added or removed is free only under the datacenter's tag policy (default
    ``user-tag-access: free``, no ``registered-tags``), else it needs Sys.Modify on ``/``
    (pve-guest-common:src/PVE/GuestHelpers.pm:assert_tag_permissions)."""
    rpc.check_vm_perm(authid, vmid, None, ["VM.Config.Options"])
    if rpc.check(authid, "/", ["Sys.Modify"], noerr=True):
        return
    privileged = set(registered)
    old_tags, new_tags = split_list(old or ""), split_list(new or "")
    for tag in sorted(set(old_tags) | set(new_tags)):
        if old_tags.count(tag) == new_tags.count(tag):
            continue
        if not freeform or tag in privileged:
            raise perm_error(f"/, Sys.Modify for modifying tag '{tag}'")


def _nesting_alone(feats: Mapping[str, Any]) -> tuple[bool, bool]:
    """Only ``nesting`` (set): a nesting change; any other flags: another change."""
    if len(feats) == 1 and feats.get("nesting"):
        return True, False
    return False, len(feats) > 0


def _features_change(
    schema: ApiSchema, old: str | None, new: str | None, delete: bool
) -> tuple[bool, bool]:
    """(nesting changed, another flag changed) (the features branch of
    pve-container:src/PVE/LXC.pm:check_ct_modify_config_perm)."""
    if delete:
        return _nesting_alone(parse_features(schema, old))
    feats = parse_features(schema, new)
    if not old:
        # a new container, or one without features
        return _nesting_alone(feats)
    before = parse_features(schema, old)
    nesting = False
    for name in [*before, *feats]:
        if str(before.get(name, "")) != str(feats.get(name, "")):
            if name != "nesting":
                return nesting, True
            nesting = True
    return nesting, False


def check_ct_modify_config_perm(
    rpc: Rpc,
    authid: str,
    schema: ApiSchema,
    storages: Mapping[str, Mapping[str, Any]],
    vmid: int,
    pool: str | None,
    oldconf: Mapping[str, Any] | None,
    newconf: Mapping[str, Any],
    delete: Iterable[str],
    unprivileged: bool,
) -> None:
    """The privilege each option needs on create (``oldconf`` None, ``pool`` tried first) and
    on ``PUT …/config`` (pool None) (pve-container:src/PVE/LXC.pm:check_ct_modify_config_perm,
    PERMISSIONS.md §3). Upstream visits the options in Perl hash order, so which failure
    comes first when several fail is random there."""
    if authid == ROOT:
        return
    old = oldconf or {}

    def need(privs: list[str]) -> None:
        rpc.check_vm_perm(authid, vmid, pool, privs)

    def one(opt: str, is_delete: bool) -> None:
        if opt in ("cores", "cpuunits", "cpulimit"):
            need(["VM.Config.CPU"])
        elif opt == "rootfs" or re.fullmatch(r"mp\d+", opt):
            need(["VM.Config.Disk"])
            if is_delete:
                return
            mptype, mp = parse_mountpoint(schema, opt, str(newconf[opt]))
            if mptype != "volume":
                raise perm_error(f"mount point type {mptype} is only allowed for root@pam")
            volid = str(mp.get("volume", ""))
            m = NEW_DISK_RE.match(volid)
            if m:
                rpc.check(authid, f"/storage/{m.group(1)}", ["Datastore.AllocateSpace"])
            else:
                check_volume_access(rpc, authid, storages, vmid, volid, "rootdir")
        elif opt in ("memory", "swap"):
            need(["VM.Config.Memory"])
        elif re.fullmatch(r"net\d+", opt):
            need(["VM.Config.Network"])
            # the bridge it leaves and the bridge it joins (pve-container eade3e4)
            if old.get(opt):
                check_bridge_access(rpc, authid, schema, str(old[opt]))
            if newconf.get(opt):
                check_bridge_access(rpc, authid, schema, str(newconf[opt]))
        elif re.fullmatch(r"dev\d+", opt):
            raise perm_error("configuring device passthrough is only allowed for root@pam")
        elif opt in ("nameserver", "searchdomain", "hostname"):
            need(["VM.Config.Network"])
        elif opt == "features":
            if not unprivileged:
                raise perm_error(
                    "changing feature flags for privileged container is only allowed for root@pam"
                )
            nesting, other = _features_change(schema, old.get(opt), newconf.get(opt), is_delete)
            if other:
                raise perm_error(
                    "changing feature flags (except nesting) is only allowed for root@pam"
                )
            if nesting:
                need(["VM.Allocate"])
        elif opt == "hookscript":
            raise perm_error("changing the hookscript is only allowed for root@pam")
        elif opt == "tags":
            new = "" if is_delete else newconf.get(opt)
            assert_tag_permissions(rpc, authid, vmid, old.get(opt), new)
        else:
            need(["VM.Config.Options"])

    for opt in newconf:
        one(opt, False)
    for opt in delete:
        one(opt, True)
