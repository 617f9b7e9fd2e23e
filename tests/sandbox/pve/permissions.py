"""PVE's privilege model for the emulator (``/work/shared/pve-api/PERMISSIONS.md`` §1).

- :class:`UserCfg` is ``user.cfg``: roles, users and their groups, API tokens (``privsep``),
  the ACL tree (entries per path for users, groups and tokens, each with ``propagate``) and
  pools (member guests and storages).
- :class:`Rpc` is the part of ``RPCEnvironment`` that answers "what may this identity do
  here": :meth:`Rpc.permissions` (the effective privileges on one path), the check
  primitives (:meth:`Rpc.check`, :meth:`Rpc.check_any`, :meth:`Rpc.check_vm_perm`), the
  declarative ``permissions`` blocks of the API schema (:meth:`Rpc.check_api2_permissions`)
  and the ``GET /access/permissions`` dump (:meth:`Rpc.effective_permissions`).

Every rule names the upstream place it follows (``repo:path:function``, the commits of
PERMISSIONS.md §0); nothing here is copied code. root@pam is a *string* test everywhere: a
token of root is not root.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import PveError, perm_error

ROOT = "root@pam"

# pve-access-control:src/PVE/AccessControl.pm:$privgroups (9: master; 8: stable-bookworm).
# Per category: root-only, admin, user and audit privileges; the built-in roles are made
# from them (create_roles).
_VM_9 = {
    "root": [],
    "admin": ["VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network",
              "VM.Config.HWType", "VM.Config.Options", "VM.Allocate", "VM.Clone",
              "VM.GuestAgent.Unrestricted", "VM.Migrate", "VM.Replicate", "VM.Snapshot",
              "VM.Snapshot.Rollback"],
    "user": ["VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console", "VM.Backup",
             "VM.GuestAgent.FileRead", "VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.FileWrite",
             "VM.PowerMgmt"],
    "audit": ["VM.Audit", "VM.GuestAgent.Audit"],
}  # fmt: skip
_VM_8 = {
    "root": [],
    "admin": ["VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network",
              "VM.Config.HWType", "VM.Config.Options", "VM.Allocate", "VM.Clone", "VM.Migrate",
              "VM.Monitor", "VM.Snapshot", "VM.Snapshot.Rollback"],
    "user": ["VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console", "VM.Backup",
             "VM.PowerMgmt"],
    "audit": ["VM.Audit"],
}  # fmt: skip
_COMMON_GROUPS = {
    "Sys": {"root": ["Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork"],
            "admin": ["Sys.Console", "Sys.Syslog"], "user": [], "audit": ["Sys.Audit"]},
    "Datastore": {"root": [], "admin": ["Datastore.Allocate", "Datastore.AllocateTemplate"],
                  "user": ["Datastore.AllocateSpace"], "audit": ["Datastore.Audit"]},
    "SDN": {"root": [], "admin": ["SDN.Allocate", "SDN.Audit"], "user": ["SDN.Use"],
            "audit": ["SDN.Audit"]},
    "User": {"root": ["Realm.Allocate"],
             "admin": ["User.Modify", "Group.Allocate", "Realm.AllocateUser"], "user": [],
             "audit": []},
    "Pool": {"root": [], "admin": ["Pool.Allocate"], "user": ["Pool.Audit"],
             "audit": ["Pool.Audit"]},
    "Mapping": {"root": [], "admin": ["Mapping.Modify"], "user": ["Mapping.Use"],
                "audit": ["Mapping.Audit"]},
}  # fmt: skip


def _privgroups(major: int) -> dict[str, dict[str, list[str]]]:
    return {"VM": _VM_9 if major >= 9 else _VM_8, **_COMMON_GROUPS}


def valid_privileges(major: int) -> frozenset[str]:
    """Every privilege name PVE ``major`` knows (``$valid_privs``: the groups plus
    Permissions.Modify, which is in none)."""
    names = {"Permissions.Modify"}
    for cat in _privgroups(major).values():
        for kind in ("root", "admin", "user", "audit"):
            names.update(cat[kind])
    return frozenset(names)


def builtin_roles(major: int) -> dict[str, frozenset[str]]:
    """The built-in roles (pve-access-control:src/PVE/AccessControl.pm:create_roles)."""
    roles: dict[str, set[str]] = {"PVEAdmin": set(), "PVEAuditor": set()}
    for cat, d in _privgroups(major).items():
        managed = d["admin"] + d["user"] + d["audit"]
        roles.setdefault(f"PVE{cat}Admin", set()).update(managed)
        roles["PVEAdmin"].update(managed)
        if d["user"]:
            roles.setdefault(f"PVE{cat}User", set()).update(d["user"] + d["audit"])
        roles["PVEAuditor"].update(d["audit"])
    # only Administrator, root@pam and PVEMappingAdmin get Mapping.Modify (create_roles)
    roles["PVEAdmin"].discard("Mapping.Modify")
    roles["PVETemplateUser"] = {"VM.Clone", "VM.Audit"}
    out = {name: frozenset(privs) for name, privs in roles.items()}
    out["NoAccess"] = frozenset()
    out["Administrator"] = valid_privileges(major)
    return out


def verify_privname(priv: str, major: int) -> None:
    """An unknown privilege name makes a check die (500), e.g. VM.Monitor on PVE 9
    (pve-access-control:src/PVE/AccessControl.pm:verify_privname)."""
    if priv not in valid_privileges(major):
        raise PveError(500, f"invalid privilege '{priv}'")


def normalize_path(path: str | None) -> str | None:
    """``AccessControl::normalize_path``: collapse ``//``, strip the trailing ``/``, only
    ``[[:alnum:].-_/]``; None for an empty or invalid path."""
    if not path:
        return None
    path = re.sub(r"/+", "/", path)
    path = path.removesuffix("/") or "/"
    if not path.startswith("/"):
        path = "/" + path
    if not re.fullmatch(r"[A-Za-z0-9.\-_/]+", path):
        return None
    return path


def split_tokenid(authid: str) -> tuple[str, str] | None:
    """``user@realm!name`` → (``user@realm``, ``name``); None for a user id."""
    m = re.fullmatch(r"([^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+)!([A-Za-z][A-Za-z0-9.\-_]+)", authid)
    return (m.group(1), m.group(2)) if m else None


def _acl_levels(path: str) -> list[str]:
    """The ACL tree levels ``roles()`` walks for ``path``: ``/``, ``/vms``, ``/vms/100``.
    Empty segments are skipped as the tree walk skips them."""
    parts = [p for p in path.split("/") if p]
    return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


# =======================================================================================
# user.cfg


@dataclass
class AclNode:
    """The entries on one ACL path: ``{id: {role: propagate}}`` per kind."""

    users: dict[str, dict[str, bool]] = field(default_factory=dict)
    groups: dict[str, dict[str, bool]] = field(default_factory=dict)
    tokens: dict[str, dict[str, bool]] = field(default_factory=dict)


@dataclass
class Pool:
    vms: set[int] = field(default_factory=set)
    storage: set[str] = field(default_factory=set)


@dataclass
class UserCfg:
    """``user.cfg`` (pve-access-control:src/PVE/AccessControl.pm:parse_user_config)."""

    major: int = 9
    roles: dict[str, frozenset[str]] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)
    groups: dict[str, set[str]] = field(default_factory=dict)  # group -> member users
    tokens: dict[str, bool] = field(default_factory=dict)  # "user@realm!name" -> privsep
    acl: dict[str, AclNode] = field(default_factory=dict)
    pools: dict[str, Pool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.roles = {**builtin_roles(self.major), **self.roles}

    # ---- what pveum does (the emulator's setup; no API for it) ------------------------
    def add_role(self, name: str, privs: Iterable[str]) -> None:
        """``pveum role add NAME --privs ...``."""
        if name.startswith("PVE") or name in ("Administrator", "NoAccess"):
            raise ValueError(f"cannot create role {name!r}: built-in names are reserved")
        names = frozenset(privs)
        for priv in names:
            verify_privname(priv, self.major)
        self.roles[name] = names

    def add_user(self, userid: str, groups: Iterable[str] = ()) -> None:
        self.users.add(userid)
        for group in groups:
            self.groups.setdefault(group, set()).add(userid)

    def add_token(self, tokenid: str, privsep: bool = True) -> None:
        """``pveum user token add USER NAME --privsep`` (privsep defaults to 1:
        pve-access-control:src/PVE/API2/User.pm token create)."""
        owner = split_tokenid(tokenid)
        if owner is None:
            raise ValueError(f"not a token id: {tokenid!r}")
        self.add_user(owner[0])
        self.tokens[tokenid] = privsep

    def grant(
        self,
        path: str,
        roles: Iterable[str],
        *,
        users: Iterable[str] = (),
        groups: Iterable[str] = (),
        tokens: Iterable[str] = (),
        propagate: bool = True,
    ) -> None:
        """``pveum acl modify PATH --roles R --users/--groups/--tokens [--propagate 0]``
        (propagate defaults to 1: pve-access-control:src/PVE/API2/ACL.pm:update_acl)."""
        norm = normalize_path(path)
        if norm is None:
            raise ValueError(f"invalid ACL path {path!r}")
        node = self.acl.setdefault(norm, AclNode())
        for role in roles:
            if role not in self.roles:
                raise ValueError(f"role '{role}' does not exist")
            for kind, ids in (("users", users), ("groups", groups), ("tokens", tokens)):
                for ugid in ids:
                    getattr(node, kind).setdefault(ugid, {})[role] = propagate

    def add_pool(self, pool: str, vms: Iterable[int] = (), storage: Iterable[str] = ()) -> None:
        self.pools[pool] = Pool(set(vms), set(storage))

    def pool_of(self, vmid: int) -> str | None:
        return next((name for name, p in self.pools.items() if vmid in p.vms), None)

    def add_vm_to_pool(self, vmid: int, pool: str) -> None:
        """The end of a create with ``pool=`` (AccessControl.pm:add_vm_to_pool)."""
        if pool in self.pools:
            self.pools[pool].vms.add(vmid)

    def remove_vm_access(self, vmid: int) -> None:
        """A destroy removes every ACL on ``/vms/{vmid}`` and the pool membership
        (pve-access-control:src/PVE/AccessControl.pm:remove_vm_access)."""
        self.acl.pop(f"/vms/{vmid}", None)
        for pool in self.pools.values():
            pool.vms.discard(vmid)


# =======================================================================================
# RPCEnvironment


class Rpc:
    """The permission side of ``PVE::RPCEnvironment`` over one :class:`UserCfg`."""

    def __init__(self, cfg: UserCfg) -> None:
        self.cfg = cfg

    # ---- the ACL walk ------------------------------------------------------------------
    def roles(self, authid: str, path: str) -> dict[str, bool]:
        """Roles of ``authid`` on ``path`` with their propagate flags, pools not included
        (pve-access-control:src/PVE/AccessControl.pm:roles)."""
        token = split_tokenid(authid)
        if token is not None:
            if authid not in self.cfg.tokens:
                return {}
            if not self.cfg.tokens[authid]:  # privsep=0: the owner's roles
                return self.roles(token[0], path)
        found: dict[str, bool] = {}
        levels = _acl_levels(path)
        for level in levels:
            node = self.cfg.acl.get(level)
            if node is None:
                continue
            final = level == levels[-1]
            # At each level: the identity's own entries (a token's, or a user's), else the
            # union of the user's groups' entries. An upper level counts only where it
            # propagates; a level that sets anything replaces what came from above.
            own = node.tokens.get(authid) or node.users.get(authid)
            if own is not None:
                new = {r: p for r, p in own.items() if final or p}
                if new:
                    found = new
                    continue
            new = {}
            for group, entry in node.groups.items():
                if authid in self.cfg.groups.get(group, set()):
                    new.update({r: p for r, p in entry.items() if final or p})
            if new:
                found = new
        if "NoAccess" in found:
            return {"NoAccess": found["NoAccess"]}
        return found

    def _pool_roles(self, authid: str, path: str) -> dict[str, bool]:
        """Roles on ``/pool/{pool}`` reach ``/vms/{id}`` and ``/storage/{sid}`` of its members
        (pve-access-control:src/PVE/RPCEnvironment.pm:$compile_acl_path)."""
        out: dict[str, bool] = {}
        for name, pool in self.cfg.pools.items():
            members = {f"/vms/{v}" for v in pool.vms} | {f"/storage/{s}" for s in pool.storage}
            if path in members:
                out.update(dict.fromkeys(self.roles(authid, f"/pool/{name}"), True))
        return out

    def permissions(self, authid: str, path: str) -> dict[str, bool]:
        """Privilege → propagate flag of ``authid`` on ``path``; a key means "held"
        (pve-access-control:src/PVE/RPCEnvironment.pm:permissions, $compile_acl_path)."""
        if authid == ROOT:
            return dict.fromkeys(self.cfg.roles["Administrator"], True)
        token = split_tokenid(authid)
        if token is not None:
            if authid not in self.cfg.tokens:
                return {}
            user_privs = self.permissions(token[0], path)
            if not self.cfg.tokens[authid]:
                return user_privs
        roles = self.roles(authid, path)
        pool_roles = self._pool_roles(authid, path)
        # pool roles are added (never replacing) unless the direct ACL says NoAccess; a pool
        # NoAccess wipes the path; pool-derived roles never propagate
        if pool_roles and "NoAccess" not in roles:
            if "NoAccess" in pool_roles:
                roles = {"NoAccess": False}
            else:
                for role in pool_roles:
                    roles.setdefault(role, False)
        privs: dict[str, bool] = {}
        for role, propagate in roles.items():
            for priv in self.cfg.roles.get(role, frozenset()):
                privs[priv] = privs.get(priv, False) or propagate
        if token is not None and token[0] != ROOT:
            # privsep: intersected per path and privilege with the owner's, propagate ANDed
            privs = {p: v and user_privs[p] for p, v in privs.items() if p in user_privs}
        return privs

    # ---- the dumps ---------------------------------------------------------------------
    def effective_permissions(self, authid: str) -> dict[str, dict[str, int]]:
        """``GET /access/permissions`` without ``path``: the fixed top paths, every path with
        an ACL entry and every pool member's path; paths where nothing is held are left out
        (pve-access-control:src/PVE/RPCEnvironment.pm:get_effective_permissions)."""
        paths = {"/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms"}
        paths |= set(self.cfg.acl)
        for pool in self.cfg.pools.values():
            paths |= {f"/vms/{v}" for v in pool.vms} | {f"/storage/{s}" for s in pool.storage}
        out: dict[str, dict[str, int]] = {}
        for path in sorted(paths):
            privs = self.permissions(authid, path)
            if privs:
                out[path] = {p: int(v) for p, v in sorted(privs.items())}
        return out

    def compute_api_permission(self, authid: str) -> dict[str, dict[str, int]]:
        """The ticket's coarse ``cap`` for the GUI: per subtree, each privilege held on any of
        its paths (pve-access-control:src/PVE/RPCEnvironment.pm:compute_api_permission)."""
        patterns = {
            "vms": r"VM\.|Permissions\.Modify",
            "access": r"(User|Group)\.|Permissions\.Modify",
            "storage": r"Datastore\.|Permissions\.Modify",
            "nodes": r"Sys\.|Permissions\.Modify",
            "sdn": r"SDN\.|Permissions\.Modify",
            "dc": r"Sys\.Audit|Sys\.Modify|SDN\.",
            "mapping": r"Mapping\.|Permissions.Modify",
        }
        res: dict[str, dict[str, int]] = {k: {} for k in patterns}
        required = ["/", "/nodes", "/access/groups", "/vms", "/storage", "/sdn", "/mapping"]
        for path in dict.fromkeys([*required, *sorted(self.cfg.acl)]):
            privs = self.permissions(authid, path)
            m = re.match(r"^/(\w+)", path)
            top = m.group(1) if m else "dc"
            if top == "pool":
                for priv in privs:
                    if priv.startswith("VM."):
                        res["vms"][priv] = 1
                    elif priv.startswith("Datastore."):
                        res["storage"][priv] = 1
                    elif priv == "Permissions.Modify":
                        res["storage"][priv] = res["vms"][priv] = 1
            elif top in patterns:
                for priv in privs:
                    if re.match(f"^({patterns[top]})", priv):
                        res[top][priv] = 1
        return res

    # ---- the check primitives ----------------------------------------------------------
    def check(self, authid: str, path: str | None, privs: list[str], noerr: bool = False) -> bool:
        """All of ``privs``; the error names the first one missing
        (pve-access-control:src/PVE/RPCEnvironment.pm:check)."""
        held = self.permissions(authid, path) if path is not None else {}
        for priv in privs:
            verify_privname(priv, self.cfg.major)
            if priv not in held:
                if noerr:
                    return False
                raise perm_error(f"{path or ''}, {priv}")
        return True

    def check_any(
        self, authid: str, path: str | None, privs: list[str], noerr: bool = False
    ) -> bool:
        """Any one of ``privs``; the error lists them all in order (RPCEnvironment.pm:check_any)."""
        held = self.permissions(authid, path) if path is not None else {}
        for priv in privs:
            verify_privname(priv, self.cfg.major)
        if any(priv in held for priv in privs):
            return True
        if noerr:
            return False
        raise perm_error(f"{path or ''}, " + "|".join(privs))

    def check_full(
        self, authid: str, path: str | None, privs: list[str], any_: bool, noerr: bool = False
    ) -> bool:
        """RPCEnvironment.pm:check_full."""
        if any_:
            return self.check_any(authid, path, privs, noerr)
        return self.check(authid, path, privs, noerr)

    def check_vm_perm(
        self,
        authid: str,
        vmid: int,
        pool: str | None,
        privs: list[str],
        any_: bool = False,
        noerr: bool = False,
    ) -> bool:
        """``/pool/{pool}`` first (silently) if a pool is given, then ``/vms/{vmid}``; the
        error always names ``/vms/{vmid}`` (RPCEnvironment.pm:check_vm_perm)."""
        if pool and self.check_full(authid, f"/pool/{pool}", privs, any_, True):
            return True
        return self.check_full(authid, f"/vms/{vmid}", privs, any_, noerr)

    def check_pool_exist(self, pool: str) -> None:
        """RPCEnvironment.pm:check_pool_exist."""
        if pool not in self.cfg.pools:
            raise perm_error(f"pool '{pool}' does not exist")

    # ---- the schema's declarative blocks -----------------------------------------------
    def check_api2_permissions(
        self, perm: Mapping[str, Any] | None, authid: str, params: Mapping[str, Any]
    ) -> None:
        """The endpoint's ``permissions`` block, before schema validation, on the raw
        parameters (pve-access-control:src/PVE/RPCEnvironment.pm:check_api2_permissions)."""
        if perm and perm.get("user") == "world":
            return
        if authid == ROOT:
            return
        if not perm:
            raise perm_error("user != root@pam")
        if perm.get("user") == "all":
            return
        if perm.get("check"):
            self.exec_api2_perm_check(perm["check"], authid, params)
            return
        raise perm_error()

    def exec_api2_perm_check(
        self, check: list[Any], authid: str, params: Mapping[str, Any], noerr: bool = False
    ) -> bool:
        """``and`` / ``or`` / ``perm`` (RPCEnvironment.pm:exec_api2_perm_check); a failed
        ``or`` is the bare "Permission check failed"."""
        test = check[0]
        if test == "and":
            for sub in check[1:]:
                self.exec_api2_perm_check(sub, authid, params)
            return True
        if test == "or":
            if any(self.exec_api2_perm_check(sub, authid, params, True) for sub in check[1:]):
                return True
            if noerr:
                return False
            raise perm_error()
        if test == "perm":
            template, privs = check[1], list(check[2])
            options = dict(zip(check[3::2], check[4::2], strict=False))
            required = options.get("require_param")
            if required and params.get(required) is None:
                if noerr:
                    return False
                raise perm_error()
            path = normalize_path(template_replace(template, params))
            return self.check_full(authid, path, privs, bool(options.get("any")), noerr)
        raise PveError(500, "unknown permission test")


def template_replace(template: str, params: Mapping[str, Any]) -> str:
    """``{name}`` from the raw, unvalidated parameters; a missing or false value becomes ``-``
    (pve-common:src/PVE/Tools.pm:template_replace)."""

    def value(m: re.Match[str]) -> str:
        found = params.get(m.group(1))
        return str(found) if found not in (None, "", 0, "0") else "-"

    return re.sub(r"\{([^}]+)\}", value, template)
