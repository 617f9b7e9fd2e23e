"""The emulator refuses exactly what PVE refuses (PERMISSIONS.md §2-§5, §8): the bridge's
SDN.Use, create's and PUT's per-option checks, task ownership, the dumps, snapshots.
Status, reason phrase and body are checked as a client sees them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.sandbox.pve.emulator import PveEmulator

UBUNTU = "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"
TOKEN, SECRET = "deploy@pve!tok", "tok-secret-0001"
USER, PASSWORD = "deploy@pve", "user-password-0001"
ROOT_PASSWORD = "root-password-0001"
# everything the create and the PUTs below need, without SDN.Use
CT_ADMIN = [
    "VM.Allocate", "VM.Audit", "VM.Config.CPU", "VM.Config.Disk", "VM.Config.Memory",
    "VM.Config.Network", "VM.Config.Options", "VM.PowerMgmt",
]  # fmt: skip
STORAGE = ["Datastore.AllocateSpace", "Datastore.Audit"]


CREATE = {
    "ostemplate": UBUNTU, "hostname": "app", "rootfs": "local-lvm:8",
    "net0": "name=eth0,bridge=vmbr0,ip=dhcp", "unprivileged": 1, "features": "nesting=1",
}  # fmt: skip


def base(vmid: int = 100, **extra: Any) -> dict[str, Any]:
    """A create's parameters; an ``extra`` of None leaves that one out."""
    merged = {"vmid": vmid, **CREATE, **extra}
    return {key: value for key, value in merged.items() if value is not None}


class Api:
    """One identity's calls: (status, reason, data) with PVE's reason phrase."""

    def __init__(self, emu: PveEmulator, token: str | None = None, secret: str = "") -> None:
        self.emu = emu
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"PVEAPIToken={token}={secret}"

    def login(self, user: str, password: str) -> Api:
        data = self.call("POST", "/access/ticket", {"username": user, "password": password})[2]
        self.session.cookies.set("PVEAuthCookie", data["ticket"])
        self.session.headers["CSRFPreventionToken"] = data["CSRFPreventionToken"]
        self.cap = data["cap"]
        return self

    def call(self, method: str, path: str, params: Any = None) -> tuple[int, str, Any]:
        kw = {"params": params} if method in ("GET", "DELETE") else {"data": params}
        # verify per request: REQUESTS_CA_BUNDLE would replace Session.verify (NOTES.md)
        resp = self.session.request(
            method, self.emu.api_url + path, timeout=10, verify=str(self.emu.ca_path), **kw
        )
        body = resp.json() if resp.content else {}
        return resp.status_code, resp.reason, body.get("data")

    def ok(self, method: str, path: str, params: Any = None) -> Any:
        status, reason, data = self.call(method, path, params)
        assert status == 200, (status, reason)
        if isinstance(data, str) and data.startswith("UPID:"):
            task = self.emu.tasks[data]
            assert task.done.wait(10)
            assert task.exitstatus in ("OK", "WARNINGS: 1"), task.lines
        return data


def denied(what: str = "") -> tuple[int, str]:
    return 403, f"Permission check failed ({what})" if what else "Permission check failed"


@pytest.fixture
def node(start_emulator: Callable[..., PveEmulator]) -> Callable[..., PveEmulator]:
    def make(
        acl: list[dict[str, Any]],
        version: str = "9.1",
        roles: dict[str, list[str]] | None = None,
        **kw: Any,
    ) -> PveEmulator:
        return start_emulator(
            version=version,
            users={"root@pam": {"password": ROOT_PASSWORD}, USER: {"password": PASSWORD}},
            tokens={TOKEN: {"secret": SECRET}},
            roles={"CTAdmin": CT_ADMIN, "Store": STORAGE, "Net": ["SDN.Use"], **(roles or {})},
            acl=acl,
            **kw,
        )

    return make


def grant(path: str, *roles: str, propagate: int = 1) -> dict[str, Any]:
    """The ACL entry for both the user and its token (privilege separation intersects)."""
    return {"path": path, "roles": list(roles), "users": [USER], "tokens": [TOKEN],
            "propagate": propagate}  # fmt: skip


CT = [grant("/vms", "CTAdmin"), grant("/storage", "Store")]
BRIDGE = "/sdn/zones/localnetwork/vmbr0"


def token(emu: PveEmulator) -> Api:
    return Api(emu, TOKEN, SECRET)


# ------------------------------------------------------------------------- SDN.Use


def test_net0_on_a_bridge_needs_sdn_use(node: Callable[..., PveEmulator]) -> None:
    emu = node(CT)
    status, reason, _ = token(emu).call("POST", "/nodes/pve/lxc", base())
    assert (status, reason) == denied(f"{BRIDGE}, SDN.Use")
    assert emu.vmids() == [] and not emu.tasks
    # the user too: only root@pam skips the bridge check
    user = Api(emu).login(USER, PASSWORD)
    assert user.call("POST", "/nodes/pve/lxc", base())[:2] == denied(f"{BRIDGE}, SDN.Use")
    root = Api(emu).login("root@pam", ROOT_PASSWORD)
    root.ok("POST", "/nodes/pve/lxc", base())


def test_sdn_use_on_the_bridge_its_zone_or_above(node: Callable[..., PveEmulator]) -> None:
    for path in (BRIDGE, "/sdn/zones/localnetwork", "/sdn", "/"):
        emu = node([*CT, grant(path, "Net")])
        token(emu).ok("POST", "/nodes/pve/lxc", base())


def test_a_tag_is_checked_instead_of_the_bridge(node: Callable[..., PveEmulator]) -> None:
    # on the bridge without propagate: untagged yes, tag 10 no
    emu = node([*CT, grant(BRIDGE, "Net", propagate=0)])
    api = token(emu)
    api.ok("POST", "/nodes/pve/lxc", base())
    tagged = base(101, net0="name=eth0,bridge=vmbr0,tag=10,ip=dhcp")
    assert api.call("POST", "/nodes/pve/lxc", tagged)[:2] == denied(f"{BRIDGE}/10, SDN.Use")
    # only on the VLAN: tag 10 yes, untagged and other VLANs no
    emu = node([*CT, grant(f"{BRIDGE}/10", "Net")])
    api = token(emu)
    api.ok("POST", "/nodes/pve/lxc", tagged)
    assert api.call("POST", "/nodes/pve/lxc", base(102))[:2] == denied(f"{BRIDGE}, SDN.Use")
    trunked = base(103, net0="name=eth0,bridge=vmbr0,trunks=10;11,ip=dhcp")
    assert api.call("POST", "/nodes/pve/lxc", trunked)[:2] == denied(f"{BRIDGE}/11, SDN.Use")


def test_a_put_checks_the_bridge_it_leaves_and_joins(node: Callable[..., PveEmulator]) -> None:
    emu = node([*CT, grant(BRIDGE, "Net")])
    api = token(emu)
    api.ok("POST", "/nodes/pve/lxc", base())
    cfg = "/nodes/pve/lxc/100/config"
    # joining vmbr1 needs it there; re-PUTting the same net0 still needs vmbr0's
    moved = {"net0": "name=eth0,bridge=vmbr1,ip=dhcp"}
    vmbr1 = "/sdn/zones/localnetwork/vmbr1"
    assert api.call("PUT", cfg, moved)[:2] == denied(f"{vmbr1}, SDN.Use")
    api.ok("PUT", cfg, {"net0": "name=eth0,bridge=vmbr0,ip=dhcp"})
    emu.user_cfg.acl.pop(BRIDGE)
    emu.user_cfg.grant(vmbr1, ["Net"], users=[USER], tokens=[TOKEN])
    # now vmbr1 is allowed but vmbr0, which it leaves, is not; a delete checks it too
    assert api.call("PUT", cfg, moved)[:2] == denied(f"{BRIDGE}, SDN.Use")
    assert api.call("PUT", cfg, {"delete": "net0"})[:2] == denied(f"{BRIDGE}, SDN.Use")
    # other keys do not touch the bridge
    api.ok("PUT", cfg, {"cores": 2})


def test_a_nic_without_a_bridge(node: Callable[..., PveEmulator]) -> None:
    # 9 skips the check (pve-container 6.0.14); 8 asks SDN for a vnet without a name
    nic = base(net0="name=eth0,ip=dhcp")
    token(node(CT)).ok("POST", "/nodes/pve/lxc", nic)
    emu8 = node(CT, version="8.4")
    status, reason, _ = token(emu8).call("POST", "/nodes/pve/lxc", nic)
    assert (status, reason) == (500, "no sdn vnet ID specified")


# ------------------------------------------------------------------------- create


def test_the_create_gate_and_pools(node: Callable[..., PveEmulator]) -> None:
    net = grant(BRIDGE, "Net")
    emu = node([grant("/storage", "Store"), net], pools={"deploy": {}})
    api = token(emu)
    # no VM.Allocate: the bare 403, and an unknown pool names itself
    assert api.call("POST", "/nodes/pve/lxc", base())[:2] == denied()
    assert api.call("POST", "/nodes/pve/lxc", base(pool="nope"))[:2] == denied(
        "pool 'nope' does not exist"
    )
    # the pool's VM.Allocate opens the gate, and its roles cover the options
    emu.user_cfg.grant("/pool/deploy", ["CTAdmin"], users=[USER], tokens=[TOKEN])
    tags = base(tags="web", pool="deploy")
    # but tags are checked on /vms/{vmid} alone
    assert api.call("POST", "/nodes/pve/lxc", tags)[:2] == denied("/vms/100, VM.Config.Options")
    api.ok("POST", "/nodes/pve/lxc", base(pool="deploy"))
    # once the task added it to the pool, the pool's roles reach /vms/100
    assert emu.user_cfg.pool_of(100) == "deploy"
    assert api.ok("GET", "/nodes/pve/lxc/100/config")["hostname"] == "app"
    # a destroy takes the pool membership (and any /vms/100 ACL) with it
    emu.user_cfg.grant("/vms/100", ["CTAdmin"], users=[USER], tokens=[TOKEN])
    api.ok("DELETE", "/nodes/pve/lxc/100")
    assert emu.user_cfg.pool_of(100) is None and "/vms/100" not in emu.user_cfg.acl


@pytest.mark.parametrize(
    ("missing", "params"),
    [
        ("VM.Config.Network", {"net0": None}),  # hostname alone
        ("VM.Config.Disk", {}),
        ("VM.Config.Options", {"onboot": 1}),
        ("VM.Config.CPU", {"cores": 2}),
        ("VM.Config.Memory", {"swap": 256}),
    ],
)
def test_create_checks_each_option(
    node: Callable[..., PveEmulator], missing: str, params: dict[str, Any]
) -> None:
    less = {"Less": [p for p in CT_ADMIN if p != missing]}
    acl = [grant("/vms", "Less"), grant("/storage", "Store"), grant(BRIDGE, "Net")]
    emu = node(acl, roles=less)
    status, reason, _ = token(emu).call("POST", "/nodes/pve/lxc", base(**params))
    assert (status, reason) == denied(f"/vms/100, {missing}")


def test_nesting_needs_vm_allocate_other_flags_root(node: Callable[..., PveEmulator]) -> None:
    emu = node([*CT, grant(BRIDGE, "Net")])
    api = token(emu)
    api.ok("POST", "/nodes/pve/lxc", base(features=None))
    cfg = "/nodes/pve/lxc/100/config"
    emu.user_cfg.roles["CTAdmin"] = frozenset(set(CT_ADMIN) - {"VM.Allocate"})
    assert api.call("PUT", cfg, {"features": "nesting=1"})[:2] == denied("/vms/100, VM.Allocate")
    assert api.call("PUT", cfg, {"features": "keyctl=1"})[:2] == denied(
        "changing feature flags (except nesting) is only allowed for root@pam"
    )
    emu.user_cfg.roles["CTAdmin"] = frozenset(CT_ADMIN)
    api.ok("PUT", cfg, {"features": "nesting=1"})
    # an unchanged flag is not checked
    emu.user_cfg.roles["CTAdmin"] = frozenset(set(CT_ADMIN) - {"VM.Allocate"})
    api.ok("PUT", cfg, {"features": "nesting=1"})


def test_create_disks_and_the_template(node: Callable[..., PveEmulator]) -> None:
    net = grant(BRIDGE, "Net")
    acl = [grant("/vms", "CTAdmin"), grant("/storage/local-lvm", "Space"), net]
    emu = node(acl, roles={"Space": ["Datastore.AllocateSpace"]})
    api = token(emu)
    # read access to the template's storage
    assert api.call("POST", "/nodes/pve/lxc", base())[:2] == denied(
        "/storage/local, Datastore.AllocateSpace|Datastore.Audit"
    )
    emu.user_cfg.grant("/storage/local", ["Store"], users=[USER], tokens=[TOKEN])
    # a bare size has no storage when it is checked: only root passes it
    status, reason, _ = api.call("POST", "/nodes/pve/lxc", base(rootfs="8"))
    assert status == 500 and reason.startswith("Only root can pass arbitrary filesystem paths.")
    # the new disk's storage: AllocateSpace
    status, reason, _ = api.call("POST", "/nodes/pve/lxc", base(rootfs="local:8"))
    assert (status, reason) == (400, "Parameter verification failed.")  # no rootdir content
    emu.user_cfg.acl.pop("/storage/local-lvm")
    assert api.call("POST", "/nodes/pve/lxc", base())[:2] == denied(
        "/storage/local-lvm, Datastore.AllocateSpace"
    )
    # without rootfs: 4 GiB on `storage`, with no VM.Config.Disk needed
    emu.user_cfg.grant("/storage/local-lvm", ["Space"], users=[USER], tokens=[TOKEN])
    emu.user_cfg.roles["CTAdmin"] = frozenset(set(CT_ADMIN) - {"VM.Config.Disk"})
    api.ok("POST", "/nodes/pve/lxc", base(rootfs=None, storage="local-lvm"))
    assert emu.load_conf(100)["rootfs"].startswith("local-lvm:vm-100-disk-0,size=4G")


def test_declarative_checks_come_before_validation(node: Callable[..., PveEmulator]) -> None:
    emu = node([])
    assert token(emu).call("GET", "/nodes/pve/lxc/abc/config")[:2] == denied("/vms/abc, VM.Audit")
    root = Api(emu).login("root@pam", ROOT_PASSWORD)
    assert root.call("GET", "/nodes/pve/lxc/abc/config")[:2] == (
        400,
        "Parameter verification failed.",
    )
    assert token(emu).call("POST", "/nodes/pve/aplinfo", {"template": "x"})[:2] == denied(
        "/storage/-, Datastore.AllocateTemplate"
    )


# ------------------------------------------------------------------------- reads


def test_env_is_hidden_without_config_options(node: Callable[..., PveEmulator]) -> None:
    emu = node([*CT, grant(BRIDGE, "Net")])
    token(emu).ok("POST", "/nodes/pve/lxc", base(env="A=1"))
    assert token(emu).ok("GET", "/nodes/pve/lxc/100/config")["env"] == "A=1"
    emu.user_cfg.roles["CTAdmin"] = frozenset(set(CT_ADMIN) - {"VM.Config.Options"})
    assert "env" not in token(emu).ok("GET", "/nodes/pve/lxc/100/config")


def test_listings_filter_silently(node: Callable[..., PveEmulator]) -> None:
    emu = node([*CT, grant(BRIDGE, "Net")])
    api = token(emu)
    api.ok("POST", "/nodes/pve/lxc", base())
    # the node's stats need Sys.Audit on it
    (entry,) = api.ok("GET", "/nodes")
    assert "maxmem" not in entry and entry["status"] == "online"
    # storages need Datastore.Audit in /cluster/resources; AllocateSpace is not enough
    emu.user_cfg.roles["Store"] = frozenset({"Datastore.AllocateSpace"})
    assert not [r for r in api.ok("GET", "/cluster/resources") if r["type"] == "storage"]
    # a CT's disk is listed to Datastore.Audit on the storage + VM.Config.Disk on the CT
    content = "/nodes/pve/storage/local-lvm/content"
    assert api.ok("GET", content) == []
    emu.user_cfg.roles["Store"] = frozenset(STORAGE)
    assert [v["volid"] for v in api.ok("GET", content)] == ["local-lvm:vm-100-disk-0"]
    # without VM.Audit the CT is invisible, but nextid still skips it
    emu.user_cfg.roles["CTAdmin"] = frozenset(set(CT_ADMIN) - {"VM.Audit"})
    assert api.ok("GET", "/cluster/resources", {"type": "vm"}) == []
    assert api.ok("GET", "/nodes/pve/lxc") == []
    assert api.ok("GET", "/cluster/nextid") == "101"


def test_tasks_go_by_owner_or_sys_audit(node: Callable[..., PveEmulator]) -> None:
    emu = node([*CT, grant(BRIDGE, "Net")])
    tok, user = token(emu), Api(emu).login(USER, PASSWORD)
    by_token = tok.ok("POST", "/nodes/pve/lxc", base())
    by_user = user.ok("POST", "/nodes/pve/lxc/100/status/start")
    # the token's task is the token's and its owner's; the user's is the user's alone
    assert user.call("GET", f"/nodes/pve/tasks/{by_token}/status")[0] == 200
    assert tok.call("GET", f"/nodes/pve/tasks/{by_user}/status")[:2] == denied(
        "/nodes/pve, Sys.Audit"
    )
    assert tok.call("GET", f"/nodes/pve/tasks/{by_user}/log")[:2] == denied("/nodes/pve, Sys.Audit")
    assert [t["upid"] for t in tok.ok("GET", "/nodes/pve/tasks")] == [by_token]
    assert {t["upid"] for t in user.ok("GET", "/nodes/pve/tasks")} == {by_token, by_user}
    # an unknown task: "no such task" first for the status, the 403 first for the log
    unknown = by_user.replace(":vzstart:", ":vzstop:")
    assert tok.call("GET", f"/nodes/pve/tasks/{unknown}/status")[:2] == (
        400,
        "Parameter verification failed.",
    )
    assert tok.call("GET", f"/nodes/pve/tasks/{unknown}/log")[:2] == denied("/nodes/pve, Sys.Audit")
    emu.user_cfg.grant("/nodes/pve", ["PVEAuditor"], users=[USER], tokens=[TOKEN])
    assert tok.call("GET", f"/nodes/pve/tasks/{by_user}/status")[0] == 200


# ------------------------------------------------------------------------- dumps


def test_access_permissions(node: Callable[..., PveEmulator]) -> None:
    emu = node([*CT, grant(BRIDGE, "Net")])
    api = token(emu)
    dump = api.ok("GET", "/access/permissions")
    assert set(dump) == {"/vms", "/storage", BRIDGE}
    assert dump[BRIDGE] == {"SDN.Use": 1}
    assert api.ok("GET", "/access/permissions", {"path": f"{BRIDGE}/10"}) == {
        f"{BRIDGE}/10": {"SDN.Use": 1}
    }
    assert api.ok("GET", "/access/permissions", {"path": "/nodes/pve"}) == {"/nodes/pve": {}}
    # a token may not read its owner's; the owner may read its token's
    assert api.call("GET", "/access/permissions", {"userid": USER})[:2] == denied(
        "/access, Sys.Audit"
    )
    user = Api(emu).login(USER, PASSWORD)
    assert user.ok("GET", "/access/permissions", {"userid": TOKEN}) == dump
    root = Api(emu).login("root@pam", ROOT_PASSWORD)
    everything = root.ok("GET", "/access/permissions", {"path": "/"})["/"]
    assert everything["Permissions.Modify"] == 1 and set(everything.values()) == {1}
    assert user.cap["vms"]["VM.Allocate"] == 1 and user.cap["sdn"] == {"SDN.Use": 1}


# ------------------------------------------------------------------------- snapshots


def test_snapshots(node: Callable[..., PveEmulator]) -> None:
    emu = node([*CT, grant(BRIDGE, "Net")])
    api = token(emu)
    api.ok("POST", "/nodes/pve/lxc", base())
    snaps = "/nodes/pve/lxc/100/snapshot"
    assert api.call("POST", snaps, {"snapname": "before"})[:2] == denied("/vms/100, VM.Snapshot")
    rollback = f"{snaps}/before/rollback"
    assert api.call("POST", rollback)[:2] == denied("/vms/100, VM.Snapshot|VM.Snapshot.Rollback")
    emu.user_cfg.roles["CTAdmin"] = frozenset(set(CT_ADMIN) - {"VM.PowerMgmt"} | {"VM.Snapshot"})
    assert api.call("POST", snaps, {"snapname": "current"})[:2] == (
        500,
        "unable to use snapshot name 'current' (reserved name)",
    )
    api.ok("POST", snaps, {"snapname": "before", "description": "x"})
    api.ok("PUT", "/nodes/pve/lxc/100/config", {"cores": 4})
    listed = api.ok("GET", snaps)
    assert [s["name"] for s in listed] == ["before", "current"]
    assert listed[1]["parent"] == "before"
    assert api.ok("GET", f"{snaps}/before/config")["description"] == "x\n"
    # rollback with start=1 starts it without VM.PowerMgmt (a direct call), in a vzstart
    # task of its own that the rollback task has started when it ends
    upid = api.ok("POST", rollback, {"start": 1})
    after = list(emu.tasks.values())[list(emu.tasks).index(upid) + 1 :]
    started = [t for t in after if t.type == "vzstart"]
    assert len(started) == 1 and started[0].done.wait(10), started
    assert started[0].exitstatus == "OK" and emu.backend.status(100) == "running"
    assert "cores" not in api.ok("GET", "/nodes/pve/lxc/100/config")  # the PUT is undone
    assert api.call("POST", "/nodes/pve/lxc/100/status/stop")[:2] == denied(
        "/vms/100, VM.PowerMgmt"
    )
    api.ok("DELETE", f"{snaps}/before")
    assert [s["name"] for s in api.ok("GET", snaps)] == ["current"]
