"""The PVE privileges a run of the Proxmox stage needs, and whether the caller holds them.

Pure: a :class:`StagePlan` (what this run will do, read from the API) in, the
:class:`Need` s out (:func:`required_privileges`); a ``GET /access/permissions`` reply in,
one :class:`PrivilegeCheck` per need out (:func:`evaluate`), gathered in a
:class:`PrivilegeReport` whose :meth:`~PrivilegeReport.message` is the refusal. Which
privilege each call needs, on which ACL path, follows PVE's code as the project's research
reads it (``shared/pve-api/PERMISSIONS.md`` §2-§4, §7):

- create (``POST /nodes/{node}/lxc``): VM.Allocate on ``/vms/{vmid}``; per option, on
  ``/vms/{vmid}`` (§3); Datastore.AllocateSpace on the new disk's storage; read access
  (Datastore.AllocateSpace or .Audit) on the template's storage. The deploy passes no
  ``pool``, so the pool alternatives of PVE's checks do not apply.
- ``PUT …/config``: any VM.Config.* (the endpoint's own check), then per option (§3).
- every ``netN`` set, changed or deleted: SDN.Use on the bridge it leaves and the bridge it
  joins, ``/sdn/zones/localnetwork/{bridge}`` (or its VLANs' paths, §4).
- seeing the container (``/cluster/resources``, config, pending, status, interfaces):
  VM.Audit; start and restart: VM.PowerMgmt; the template: listing it Datastore.Audit or
  .AllocateSpace, downloading it Datastore.AllocateTemplate.
- the snapshot before a release (``pve_snapshot_before_release``): taking one and deleting
  the oldest, VM.Snapshot (``API2/LXC/Snapshot.pm`` ``snapshot``, ``delsnapshot``; §2.19);
  the storage's feature check and the listing need VM.Audit. A rollback
  (``egodeploy rollback --snapshot``) needs VM.Snapshot or VM.Snapshot.Rollback.
- the caller's own tasks and ``/access/permissions`` need nothing.

What a reply cannot show (PERMISSIONS.md §5): root@pam-only options (the deploy sends none
with a token), the datacenter's tag policy, the order PVE would refuse in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CONFIG_PRIVILEGES = (
    "VM.Config.Disk",
    "VM.Config.CPU",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
)
# Create parameters PVE takes out before the per-option check (create_vm; §3): they carry
# none, or their own (ostemplate, storage, unprivileged, ha-managed).
_UNCHECKED_ON_CREATE = frozenset(
    {"node", "vmid", "ostemplate", "storage", "pool", "password", "ssh-public-keys", "start",
     "unprivileged", "force", "restore", "unique", "bwlimit", "ignore-unpack-errors",
     "ha-managed"}
)  # fmt: skip
# A new volume in an LXC config is STORAGE:SIZE (pve-container LXC.pm $NEW_DISK_RE)
_NEW_DISK = re.compile(r"^([^:\s]+):(\d+(\.\d+)?)$")

# The README's roles ("API access"), to name the one to fix per kind of path
ROLE_VMS = "EgographDeploy"
ROLE_DISK = "EgographDisk"
ROLE_TEMPLATES = "EgographTemplates"
ROLE_NET = "EgographNet"


@dataclass(frozen=True)
class Need:
    """One check PVE will make: ``privileges`` (any one of them) on ``path``."""

    privileges: tuple[str, ...]
    path: str
    why: str
    role: str  # the README role that grants it

    @property
    def label(self) -> str:
        """As PVE writes an any-of check: ``Datastore.Audit|Datastore.AllocateSpace``."""
        return "|".join(self.privileges)


@dataclass(frozen=True)
class PrivilegeCheck:
    """A need and whether the caller holds it (None: the reply could not tell)."""

    need: Need
    held: bool | None


@dataclass(frozen=True)
class StagePlan:
    """What this run of the Proxmox stage will do, as far as privileges go.

    ``create``: the create's parameters when the container is absent (else None);
    ``update``: the ``PUT …/config`` parameters (``delete`` a comma list), empty for none;
    ``current``: the container's config (the bridge a ``net0`` change leaves);
    ``template_present``: None when the storage could not be listed.
    """

    vmid: int
    template_storage: str
    template_present: bool | None
    create: Mapping[str, Any] | None = None
    update: Mapping[str, Any] = field(default_factory=dict)
    current: Mapping[str, Any] = field(default_factory=dict)
    starts: bool = False
    may_restart: bool = False
    snapshots: bool = False
    """The run may snapshot the container before a release (and delete old ones)."""


# ------------------------------------------------------------------------ what is needed


def bridge_paths(net: str | None) -> list[str]:
    """The ACL paths SDN.Use is checked on for one ``netN`` value: the bridge's, or instead
    its VLAN tag's and trunk VLANs' (pve-guest-common GuestHelpers.pm:check_vnet_access).
    A NIC without a bridge has none."""
    props = dict(p.split("=", 1) for p in (net or "").split(",") if "=" in p)
    bridge = props.get("bridge")
    if not bridge:
        return []
    base = f"/sdn/zones/localnetwork/{bridge}"
    vlans = [props["tag"]] if props.get("tag") else []
    vlans += [v for v in props.get("trunks", "").split(";") if v]
    return [f"{base}/{vlan}" for vlan in vlans] or [base]


def _option_needs(
    key: str, value: Any, vm: str, current: Mapping[str, Any], deleting: bool
) -> list[Need]:
    """One option of a create or PUT (pve-container LXC.pm:check_ct_modify_config_perm)."""

    def vm_need(priv: str) -> Need:
        return Need((priv,), vm, f"setting {key}", ROLE_VMS)

    if key in ("cores", "cpuunits", "cpulimit"):
        return [vm_need("VM.Config.CPU")]
    if key in ("memory", "swap"):
        return [vm_need("VM.Config.Memory")]
    if key == "rootfs" or re.fullmatch(r"mp\d+", key):
        needs = [vm_need("VM.Config.Disk")]
        m = None if deleting else _NEW_DISK.match(str(value).split(",", 1)[0])
        if m:
            why = f"allocating {key} on {m.group(1)}"
            needs.append(
                Need(("Datastore.AllocateSpace",), f"/storage/{m.group(1)}", why, ROLE_DISK)
            )
        return needs
    if re.fullmatch(r"net\d+", key):
        needs = [vm_need("VM.Config.Network")]
        for net, verb in ((current.get(key), "leaving"), (None if deleting else value, "on")):
            for path in bridge_paths(str(net) if net else None):
                bridge = path.removeprefix("/sdn/zones/localnetwork/")
                needs.append(Need(("SDN.Use",), path, f"{key} {verb} {bridge}", ROLE_NET))
        return needs
    if key in ("hostname", "nameserver", "searchdomain"):
        return [vm_need("VM.Config.Network")]
    if key == "features":
        # the deploy only ever changes nesting, which needs VM.Allocate
        return [Need(("VM.Allocate",), vm, "changing the nesting feature", ROLE_VMS)]
    return [vm_need("VM.Config.Options")]


def required_privileges(plan: StagePlan) -> list[Need]:
    """Every check PVE will make on this run, in the order the stage meets them, one per
    (privileges, path) (their reasons joined)."""
    vm = f"/vms/{plan.vmid}"
    templates = f"/storage/{plan.template_storage}"
    needs = [
        Need(("Datastore.Audit", "Datastore.AllocateSpace"), templates, "listing the templates",
             ROLE_TEMPLATES),
    ]  # fmt: skip
    if plan.template_present is not True:
        needs.append(
            Need(("Datastore.AllocateTemplate",), templates, "downloading the template",
                 ROLE_TEMPLATES)
        )  # fmt: skip
    if plan.create is not None:
        needs.append(Need(("VM.Allocate",), vm, "creating the container", ROLE_VMS))
        for key, value in plan.create.items():
            if key not in _UNCHECKED_ON_CREATE:
                needs += _option_needs(key, value, vm, {}, deleting=False)
        needs.append(
            Need(("Datastore.AllocateSpace", "Datastore.Audit"), templates,
                 "reading the template", ROLE_TEMPLATES)
        )  # fmt: skip
    needs.append(Need(("VM.Audit",), vm, "seeing the container", ROLE_VMS))
    if plan.update:
        needs.append(Need(CONFIG_PRIVILEGES, vm, "changing its config", ROLE_VMS))
        deletes = [k for k in str(plan.update.get("delete", "")).split(",") if k]
        for key, value in plan.update.items():
            if key != "delete":
                needs += _option_needs(key, value, vm, plan.current, deleting=False)
        for key in deletes:
            needs += _option_needs(key, None, vm, plan.current, deleting=True)
    if plan.starts:
        needs.append(Need(("VM.PowerMgmt",), vm, "starting it", ROLE_VMS))
    if plan.may_restart:
        needs.append(Need(("VM.PowerMgmt",), vm, "restarting it", ROLE_VMS))
    if plan.snapshots:
        needs.append(Need(("VM.Snapshot",), vm, "snapshotting it before a release", ROLE_VMS))
    return _merged(needs)


def rollback_need(vmid: int) -> Need:
    """What ``POST …/snapshot/{snapname}/rollback`` checks: any of the two (§2.19)."""
    return Need(("VM.Snapshot", "VM.Snapshot.Rollback"), f"/vms/{vmid}",
                "rolling it back to a snapshot", ROLE_VMS)  # fmt: skip


def _merged(needs: Iterable[Need]) -> list[Need]:
    out: dict[tuple[frozenset[str], str], Need] = {}
    for need in needs:
        key = (frozenset(need.privileges), need.path)
        if key in out:
            first = out[key]
            if need.why not in first.why.split("; "):
                out[key] = Need(first.privileges, first.path, f"{first.why}; {need.why}",
                                first.role)  # fmt: skip
        else:
            out[key] = need
    return list(out.values())


# ------------------------------------------------------------------- what the reply grants


def _ancestors(path: str) -> list[str]:
    """``/a/b/c`` → ``/a/b``, ``/a``, ``/`` (nearest first)."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:i]) for i in range(len(parts) - 1, -1, -1)]


def held_on(reply: Mapping[str, Mapping[str, Any]], path: str) -> frozenset[str] | None:
    """The privileges a ``GET /access/permissions`` reply grants on ``path``; None when the
    reply cannot tell.

    The reply lists ``{path: {privilege: propagate}}`` for the fixed top paths, every path
    with an ACL entry and pool members, leaving out paths where nothing is held (§5). A path
    it lists is exact. An unlisted one has no ACL of its own that grants anything, so it
    inherits what propagates from its nearest listed ancestor: that ancestor's privileges
    if all of them propagate (1). If some do not (0), an entry there applies to that path
    alone and the privileges below may come from further up, which the reply does not
    show: None, ask for the path itself (``?path=``). No listed ancestor: nothing held.
    (A deeper ACL that leaves the caller with nothing is left out of the reply too, so it
    cannot be seen here; PVE's own 403 then names it.)"""
    if path in reply:
        return frozenset(reply[path])
    for ancestor in _ancestors(path):
        if ancestor in reply:
            privs = reply[ancestor]
            if all(int(v) == 1 for v in privs.values()):
                return frozenset(privs)
            return None
    return frozenset()


def undecided_paths(needs: Iterable[Need], reply: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The paths :func:`held_on` cannot decide from ``reply``, each once."""
    return list(dict.fromkeys(n.path for n in needs if held_on(reply, n.path) is None))


def evaluate(
    needs: Iterable[Need], reply: Mapping[str, Mapping[str, Any]]
) -> tuple[PrivilegeCheck, ...]:
    out = []
    for need in needs:
        held = held_on(reply, need.path)
        ok = None if held is None else any(p in held for p in need.privileges)
        out.append(PrivilegeCheck(need, ok))
    return tuple(out)


# ------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class PrivilegeReport:
    """The checks for one caller (``auth_id``); ``skipped`` says why there are none."""

    auth_id: str
    checks: tuple[PrivilegeCheck, ...] = ()
    skipped: str = ""

    @property
    def missing(self) -> tuple[PrivilegeCheck, ...]:
        return tuple(c for c in self.checks if c.held is False)

    @property
    def ok(self) -> bool:
        return not self.missing

    def message(self) -> str:
        """The refusal: every missing privilege with its path, and what to grant; "" if
        nothing is missing."""
        missing = self.missing
        if not missing:
            return ""
        by_path: dict[str, list[PrivilegeCheck]] = {}
        for check in missing:
            by_path.setdefault(check.need.path, []).append(check)
        parts = [
            f"{path}: {', '.join(c.need.label for c in checks)}" for path, checks in by_path.items()
        ]
        whys = "; ".join(dict.fromkeys(c.need.why for c in missing))
        role_names = list(dict.fromkeys(c.need.role for c in missing))
        roles = ("roles " if len(role_names) > 1 else "role ") + ", ".join(role_names)
        token = "!" in self.auth_id
        who = f"API token {self.auth_id} (pve_token_id)" if token else f"user {self.auth_id}"
        grant = (
            f"grant them to the user {self.auth_id.split('!', 1)[0]} and to the token "
            "(privilege separation keeps only what both hold)"
            if token
            else "grant them to the user"
        )
        return (
            f"Proxmox privileges: the {who} is missing on "
            + "; on ".join(parts)
            + f" (needed for: {whys}). Nothing was changed; {grant}: the README's "
            f"'API access' {roles} on " + ("those paths." if len(by_path) > 1 else "that path.")
        )
