"""The emulator's privilege model (tests/sandbox/pve/permissions.py) against the rules of
PERMISSIONS.md §1.3/§5: the ACL walk, groups, NoAccess, pools, token privilege separation,
and the ``/access/permissions`` dump. Pure: no server."""

from __future__ import annotations

import pytest

from tests.sandbox.pve.errors import PveError
from tests.sandbox.pve.permissions import Rpc, UserCfg, builtin_roles, template_replace

USER = "deploy@pve"
TOKEN = "deploy@pve!tok"


def rpc(major: int = 9) -> tuple[UserCfg, Rpc]:
    cfg = UserCfg(major=major)
    cfg.add_user(USER)
    cfg.add_token(TOKEN)
    return cfg, Rpc(cfg)


def test_a_deeper_level_replaces_what_it_inherits() -> None:
    # PVEVMAdmin on /vms (propagated) plus PVEAuditor on /vms/100: only PVEAuditor there
    cfg, r = rpc()
    cfg.grant("/vms", ["PVEVMAdmin"], users=[USER])
    cfg.grant("/vms/100", ["PVEAuditor"], users=[USER])
    assert set(r.permissions(USER, "/vms/100")) == builtin_roles(9)["PVEAuditor"]
    assert "VM.Allocate" in r.permissions(USER, "/vms/101")


def test_propagate_and_the_final_level() -> None:
    cfg, r = rpc()
    cfg.grant("/vms", ["PVEVMUser"], users=[USER], propagate=False)
    assert r.permissions(USER, "/vms")["VM.PowerMgmt"] is False  # on the path itself
    assert r.permissions(USER, "/vms/100") == {}  # does not reach below
    # a non-propagating upper entry does not replace what comes from above it
    cfg.grant("/", ["PVEAuditor"], users=[USER])
    assert set(r.permissions(USER, "/vms/100")) == builtin_roles(9)["PVEAuditor"]


def test_user_entries_beat_group_entries_and_groups_unite() -> None:
    cfg, r = rpc()
    cfg.add_user(USER, groups=["ops", "audit"])
    cfg.grant("/vms", ["PVEVMUser"], groups=["ops"])
    cfg.grant("/vms", ["PVETemplateUser"], groups=["audit"])
    held = set(r.permissions(USER, "/vms/100"))
    assert {"VM.PowerMgmt", "VM.Clone"} <= held  # the union of the groups at one level
    cfg.grant("/vms", ["PVEAuditor"], users=[USER])
    assert set(r.permissions(USER, "/vms/100")) == builtin_roles(9)["PVEAuditor"]


def test_noaccess_leaves_nothing() -> None:
    cfg, r = rpc()
    cfg.grant("/", ["Administrator"], users=[USER])
    cfg.grant("/vms/100", ["NoAccess", "PVEVMAdmin"], users=[USER])
    assert r.permissions(USER, "/vms/100") == {}
    assert r.check(USER, "/vms/101", ["VM.Allocate"])


def test_pool_roles_merge_never_propagate_and_noaccess_wins() -> None:
    cfg, r = rpc()
    cfg.add_pool("deploy", vms=[100], storage=["local-lvm"])
    cfg.grant("/pool/deploy", ["PVEVMUser"], users=[USER])
    cfg.grant("/vms", ["PVETemplateUser"], users=[USER])
    on_ct = r.permissions(USER, "/vms/100")
    assert on_ct["VM.PowerMgmt"] is False and on_ct["VM.Clone"] is True  # merged
    assert "VM.PowerMgmt" not in r.permissions(USER, "/vms/101")  # members only
    cfg.grant("/vms/100", ["NoAccess"], users=[USER])
    assert r.permissions(USER, "/vms/100") == {}  # a direct NoAccess is not trumped
    cfg.acl.pop("/vms/100")
    cfg.grant("/pool/deploy", ["NoAccess"], users=[USER])
    assert r.permissions(USER, "/vms/100") == {}  # a pool NoAccess wipes the path


def test_a_privsep_token_gets_only_what_token_and_owner_both_hold() -> None:
    cfg, r = rpc()
    cfg.grant("/vms", ["PVEVMAdmin"], tokens=[TOKEN])
    assert r.permissions(TOKEN, "/vms/100") == {}  # the token's ACL alone gives nothing
    cfg.grant("/", ["PVEVMUser"], users=[USER], propagate=False)
    cfg.grant("/vms", ["PVEVMUser"], users=[USER], propagate=False)
    held = r.permissions(TOKEN, "/vms")
    assert set(held) == builtin_roles(9)["PVEVMUser"]
    assert not any(held.values())  # propagate ANDed: the user's entry does not propagate
    # groups never apply to a token
    cfg.add_user(USER, groups=["ops"])
    cfg.grant("/sdn", ["PVESDNUser"], groups=["ops"])
    cfg.grant("/sdn", ["PVESDNUser"], tokens=[TOKEN])
    assert "SDN.Use" in r.permissions(USER, "/sdn/zones/localnetwork/vmbr0")
    assert "SDN.Use" in r.permissions(TOKEN, "/sdn/zones/localnetwork/vmbr0")
    cfg.grant("/storage", ["PVEDatastoreUser"], groups=["ops"])
    assert r.permissions(TOKEN, "/storage/local") == {}


def test_privsep_0_is_the_owner_and_a_missing_token_is_nothing() -> None:
    cfg, r = rpc()
    cfg.add_token("deploy@pve!full", privsep=False)
    cfg.grant("/vms", ["PVEVMUser"], users=[USER])
    assert r.permissions("deploy@pve!full", "/vms/1") == r.permissions(USER, "/vms/1")
    cfg.grant("/vms", ["PVEVMUser"], tokens=["deploy@pve!gone"])
    assert r.permissions("deploy@pve!gone", "/vms/1") == {}


def test_root_is_a_string_test() -> None:
    cfg, r = rpc()
    cfg.add_token("root@pam!tk")
    cfg.add_token("root@pam!all", privsep=False)
    assert set(r.permissions("root@pam", "/x")) == builtin_roles(9)["Administrator"]
    # privsep=1: just its own ACLs (no intersection: root holds everything)
    assert r.permissions("root@pam!tk", "/vms") == {}
    cfg.grant("/vms", ["PVEVMUser"], tokens=["root@pam!tk"])
    assert set(r.permissions("root@pam!tk", "/vms/5")) == builtin_roles(9)["PVEVMUser"]
    assert "Sys.Modify" in r.permissions("root@pam!all", "/")
    # and neither passes what only root@pam passes
    with pytest.raises(PveError) as info:
        r.check_api2_permissions(None, "root@pam!all", {})
    assert info.value.message == "Permission check failed (user != root@pam)\n"
    r.check_api2_permissions(None, "root@pam", {})


def test_the_check_primitives_and_their_messages() -> None:
    cfg, r = rpc()
    cfg.grant("/vms", ["PVEAuditor"], users=[USER])
    with pytest.raises(PveError) as info:
        r.check(USER, "/vms/100", ["VM.Audit", "VM.PowerMgmt", "VM.Allocate"])
    assert (info.value.status, info.value.message) == (
        403,
        "Permission check failed (/vms/100, VM.PowerMgmt)\n",
    )
    with pytest.raises(PveError) as info:
        r.check_any(USER, "/storage/local", ["Datastore.AllocateSpace", "Datastore.Audit"])
    assert info.value.message == (
        "Permission check failed (/storage/local, Datastore.AllocateSpace|Datastore.Audit)\n"
    )
    # check_vm_perm tries the pool silently, and names /vms/{vmid}
    cfg.add_pool("p")
    with pytest.raises(PveError) as info:
        r.check_vm_perm(USER, 100, "p", ["VM.Config.CPU"])
    assert info.value.message == "Permission check failed (/vms/100, VM.Config.CPU)\n"
    # an unknown name dies: VM.Monitor is gone in 9, still there in 8
    with pytest.raises(PveError) as info:
        r.check(USER, "/vms", ["VM.Monitor"])
    assert (info.value.status, info.value.message) == (500, "invalid privilege 'VM.Monitor'\n")
    _cfg8, r8 = rpc(major=8)
    assert r8.check(USER, "/vms", ["VM.Monitor"], noerr=True) is False


def test_declarative_checks_fill_missing_parameters_with_a_dash() -> None:
    _cfg, r = rpc()
    assert template_replace("/storage/{storage}", {}) == "/storage/-"
    perm = {"check": ["perm", "/storage/{storage}", ["Datastore.AllocateTemplate"]]}
    with pytest.raises(PveError) as info:
        r.check_api2_permissions(perm, USER, {"node": "pve"})
    assert info.value.message == (
        "Permission check failed (/storage/-, Datastore.AllocateTemplate)\n"
    )
    # a failed "or" names nothing
    either = {"check": ["or", ["perm", "/", ["Sys.Audit"]], ["perm", "/", ["Sys.Modify"]]]}
    with pytest.raises(PveError) as info:
        r.check_api2_permissions(either, USER, {})
    assert info.value.message == "Permission check failed\n"


def test_the_effective_permissions_dump() -> None:
    cfg, r = rpc()
    cfg.grant("/vms", ["PVEVMUser"], users=[USER, "other@pve"], tokens=[TOKEN])
    cfg.grant("/sdn/zones/localnetwork/vmbr0", ["PVESDNUser"], users=["other@pve"])
    cfg.grant("/storage/local", ["PVEDatastoreUser"], users=[USER], propagate=False)
    cfg.add_pool("deploy", vms=[300])
    dump = r.effective_permissions(USER)
    # the fixed paths and every ACL'd or pooled path, but only where something is held
    assert set(dump) == {"/vms", "/vms/300", "/storage/local"}
    assert dump["/vms"]["VM.PowerMgmt"] == 1
    assert dump["/storage/local"] == {"Datastore.AllocateSpace": 0, "Datastore.Audit": 0}
    # /vms/123 is not listed though /vms propagates to it
    assert "/vms/123" not in dump
    assert r.effective_permissions("nobody@pve") == {}
    # a token's dump is after the intersection
    assert set(r.effective_permissions(TOKEN)) == {"/vms", "/vms/300"}
