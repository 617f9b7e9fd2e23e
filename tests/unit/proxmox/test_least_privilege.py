"""The README's least-privilege setup is exactly enough for the Proxmox stage.

The roles and the ACL path each is granted on are parsed from the README's "API access"
commands (``pveum role add`` / ``pveum acl modify``), so the README and this test cannot
drift; the sandbox's node (``tests.sandbox.pve.site``) must say the same. A token holding
exactly them runs the real Proxmox stage (``deploys.proxmox.ensure_container``, in process
through pyinfra's API, the node as ``@local``) against the emulator, whose checks follow
PVE's code (``tests/sandbox/pve/permissions.py``, ``lxc_permissions.py``), from an empty
node: node lookup, template download, create, start, the address from ``/interfaces``;
then a settings change (config ``PUT``), a ``nesting`` change applied by a restart, and a
rerun that changes nothing. A token missing any one privilege on its path fails with a
message naming it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from deploys.proxmox import access, preflight
from deploys.proxmox.privileges import PrivilegeReport
from tests.sandbox.pve import site as pve_site
from tests.sandbox.pve.emulator import PveEmulator
from tests.unit.proxmox.stage import run_stage, stage_settings

PROJECT = Path(__file__).resolve().parents[3]
USER = "deploy@pve"
TOKEN = "deploy@pve!egograph"
SECRET = "lp-canary-token-secret-7d41"
ROOT_PASSWORD = "lp-canary-root-password-5e02"
# the README's paths are for the default settings
DEFAULT_PATHS = {"<ct_storage>": "local-lvm", "<ct_template_storage>": "local",
                 "<ct_bridge>": "vmbr0"}  # fmt: skip


def readme_access() -> str:
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Proxmox", 1)[1].split("\n## ", 1)[0]
    return section.split("**API access.**", 1)[1].split("**TLS.**", 1)[0]


def readme_setup() -> tuple[dict[str, list[str]], dict[str, str]]:
    """(role → privileges, ACL path → role) from the README's pveum commands."""
    block = readme_access().split("```sh\n", 1)[1].split("```", 1)[0]
    roles = {
        m.group(1): m.group(2).split(",")
        for m in re.finditer(r'^pveum role add (\S+) --privs "([^"]+)"$', block, re.M)
    }
    acl = {
        m.group(1): m.group(2)
        for m in re.finditer(
            rf"^pveum acl modify (\S+) --roles (\S+) --users {USER} --tokens '{TOKEN}'$",
            block,
            re.M,
        )
    }
    assert f"pveum user token add {USER} egograph --privsep 1" in block
    assert roles and acl and set(acl.values()) == set(roles), (roles, acl)
    for privs in roles.values():
        assert all(re.fullmatch(r"[A-Z][A-Za-z]+(\.[A-Za-z]+)+", p) for p in privs), privs
    return roles, acl


ROLES, ACL = readme_setup()
GRANTS = [(priv, path) for path, role in ACL.items() for priv in ROLES[role]]


def readme_table() -> set[tuple[str, str]]:
    """(privilege, path) rows of the README's table, the paths for the default settings."""
    rows = set()
    for m in re.finditer(r"^\| ([A-Z][\w.]+) \| `([^`]+)` \|", readme_access(), re.M):
        path = m.group(2)
        for placeholder, value in DEFAULT_PATHS.items():
            path = path.replace(placeholder, value)
        rows.add((m.group(1), path))
    return rows


@pytest.fixture(autouse=True)
def _ssh_ports_open(monkeypatch: pytest.MonkeyPatch) -> None:
    # FakeBackend addresses are not real machines: their SSH port counts as open
    monkeypatch.setattr(access, "ssh_port_open", lambda *a, **k: True)


@pytest.fixture
def make_node(start_emulator: Any) -> Any:
    def make(without: tuple[str, str] | None = None) -> PveEmulator:
        """The README's setup; ``without`` = (privilege, path) left out of it."""
        roles = {name: list(privs) for name, privs in ROLES.items()}
        if without is not None:
            priv, path = without
            roles[ACL[path]].remove(priv)
        acl = [
            {"path": path, "roles": [role], "users": [USER], "tokens": [TOKEN]}
            for path, role in ACL.items()
        ]
        return start_emulator(
            users={"root@pam": {"password": ROOT_PASSWORD}},
            tokens={TOKEN: {"secret": SECRET}},
            roles=roles,
            acl=acl,
            templates=(),  # an empty node: the template must be downloaded
        )

    return make


def settings_for(emu: PveEmulator, tmp_path: Path, **overrides: Any) -> Any:
    return stage_settings(emu, tmp_path, token=TOKEN, secret=SECRET, **overrides)


# The stage as a user meets it: from an empty node; then a spec change PUT to the running
# container; then nesting switched off, which waits in [pve:pending] until the restart.
SEQUENCE: list[dict[str, Any]] = [
    {},
    {"ct_cores": 3, "ct_memory_mb": 2048, "ct_swap_mb": 512, "ct_onboot": False},
    {"ct_cores": 3, "ct_memory_mb": 2048, "ct_swap_mb": 512, "ct_onboot": False,
     "ct_nesting": False, "ct_allow_restart": True},
]  # fmt: skip


def test_the_readme_setup_is_parsed_and_the_sandbox_uses_it() -> None:
    assert len(GRANTS) == len(set(GRANTS)) >= 10
    assert ("SDN.Use", "/sdn/zones/localnetwork/vmbr0") in GRANTS
    assert ("VM.Allocate", "/vms") in GRANTS
    # the table says what the commands grant, and the sandbox's node grants the same
    assert readme_table() == set(GRANTS)
    assert ROLES == pve_site.DEPLOY_ROLES and ACL == pve_site.DEPLOY_ACL


def test_the_readme_setup_runs_the_proxmox_stage(
    make_node: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emu = make_node()
    ok, said = run_stage(settings_for(emu, tmp_path, **SEQUENCE[0]), caplog)
    assert ok, said
    assert "Permission check failed" not in said
    types = [t.type for t in emu.tasks.values()]
    assert sorted(types) == ["download", "vzcreate", "vzstart"], types
    (vmid,) = emu.vmids()
    assert emu.backend.status(vmid) == "running"

    # a changed spec is PUT to the running container (VM.Config.*)
    ok, said = run_stage(settings_for(emu, tmp_path, **SEQUENCE[1]), caplog)
    assert ok, said
    conf = emu.load_conf(vmid)
    effective = {**conf, **conf.get("pending", {})}
    assert (int(effective["cores"]), int(effective["memory"])) == (3, 2048), conf
    # nesting off (VM.Allocate) waits in pending; the allowed restart applies it
    ok, said = run_stage(settings_for(emu, tmp_path, **SEQUENCE[2]), caplog)
    assert ok, said
    assert "vzreboot" in [t.type for t in emu.tasks.values()]
    assert "features" not in emu.load_conf(vmid)
    # and the run after changes nothing and starts no task
    before = len(emu.tasks)
    ok, said = run_stage(settings_for(emu, tmp_path, **SEQUENCE[2]), caplog)
    assert ok, said
    assert len(emu.tasks) == before
    assert SECRET not in said
    # a release's snapshot, and the oldest deleted (VM.Snapshot)
    assert release_snapshot(emu, tmp_path) == ""
    assert list(emu.load_conf(vmid)["snapshots"]) == ["egograph_000000000002"]


def release_snapshot(emu: PveEmulator, tmp_path: Path) -> str:
    """The snapshot a release takes (the container host's step, on the controller: take
    one, delete the oldest beyond keep=1) with the stage's settings; what it said ("" ok)."""
    from deploys.proxmox.client import ContainerRef
    from deploys.proxmox.errors import PveError
    from deploys.proxmox.snapshots import take

    (vmid,) = emu.vmids()
    api = access.client(access.Pve.from_settings(settings_for(emu, tmp_path)))
    ref = ContainerRef("pve", vmid, "running")
    try:
        for name in ("egograph_000000000001", "egograph_000000000002"):
            take(api, ref, name=name, description="", keep=1, unsupported_ok=False, timeout=30)
    except PveError as exc:
        return str(exc)
    return ""


def fails_at(emu: PveEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> str:
    """Run the sequence, then a release's snapshot, until one fails; what it said."""
    for overrides in SEQUENCE:
        ok, said = run_stage(settings_for(emu, tmp_path, **overrides), caplog)
        if not ok:
            return said
    said = release_snapshot(emu, tmp_path)
    if said:
        return said
    raise AssertionError("the stage ran through")


def without_preflight(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch the deploy's own check off: what is left is what PVE (the emulator) checks."""
    monkeypatch.setattr(
        preflight, "privilege_report", lambda *a, **k: PrivilegeReport(TOKEN, skipped="off")
    )


@pytest.mark.parametrize(("missing", "path"), GRANTS, ids=[f"{p}@{a}" for p, a in GRANTS])
def test_each_privilege_is_needed_on_its_path(
    missing: str,
    path: str,
    make_node: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PVE itself refuses the stage without it: the deploy's check is off here, so this
    # rests on the emulator's reading of PVE's code, not on the deploy's
    without_preflight(monkeypatch)
    emu = make_node(without=(missing, path))
    try:
        said = fails_at(emu, tmp_path, caplog)
    except AssertionError:
        pytest.fail(f"the stage ran without {missing} on {path}: README lists a needless one")
    # PVE's 403 names it ("Permission check failed (/vms/100, VM.PowerMgmt)"); where PVE
    # answers with silence instead (no VM.Audit: /cluster/resources omits the container)
    # or names nothing (create's VM.Allocate gate), the deploy names it itself
    assert re.search(rf"(?<![\w.]){re.escape(missing)}(?![\w.])", said), said
    assert SECRET not in said


@pytest.mark.parametrize(("missing", "path"), GRANTS, ids=[f"{p}@{a}" for p, a in GRANTS])
def test_the_preflight_names_a_missing_privilege_before_any_change(
    missing: str, path: str, make_node: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emu = make_node(without=(missing, path))
    ok, said = run_stage(settings_for(emu, tmp_path), caplog)
    assert not ok
    # one message: the privilege with its path, the token, the role to fix
    (line,) = [ln for ln in said.splitlines() if "Proxmox privileges:" in ln]
    # on the path PVE checks: the grant's, or below it (/vms/100 for a grant on /vms)
    assert f"the API token {TOKEN} (pve_token_id) is missing on {path}" in line, line
    named = rf"on {re.escape(path)}(/\S*)?: [^;(]*(?<![\w.]){re.escape(missing)}(?![\w.])"
    assert re.search(named, line), line
    assert ACL[path] in line
    assert "Permission check failed" not in said  # PVE was never asked to change anything
    assert emu.tasks == {} and emu.vmids() == []
    assert SECRET not in said


def test_the_preflight_lists_everything_missing_at_once(
    make_node: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emu = make_node(without=("SDN.Use", "/sdn/zones/localnetwork/vmbr0"))
    emu.user_cfg.roles["EgographTemplates"] = frozenset({"Datastore.Audit"})
    ok, said = run_stage(settings_for(emu, tmp_path), caplog)
    assert not ok
    assert (
        "is missing on /storage/local: Datastore.AllocateTemplate; "
        "on /sdn/zones/localnetwork/vmbr0: SDN.Use (needed for: downloading the template; "
        "net0 on vmbr0)"
    ) in said, said
    assert "EgographTemplates, EgographNet" in said
    assert emu.tasks == {}


def test_moving_the_bridge_needs_sdn_use_on_both_bridges(
    make_node: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emu = make_node()
    assert run_stage(settings_for(emu, tmp_path), caplog)[0]
    (vmid,) = emu.vmids()
    before = emu.load_conf(vmid)["net0"]
    ok, said = run_stage(settings_for(emu, tmp_path, ct_bridge="vmbr1"), caplog)
    assert not ok
    assert (
        "is missing on /sdn/zones/localnetwork/vmbr1: SDN.Use (needed for: net0 on vmbr1)" in said
    )
    assert emu.load_conf(vmid)["net0"] == before
    # the README's alternative: EgographNet on the zone covers every plain bridge
    emu.user_cfg.grant("/sdn/zones/localnetwork", ["EgographNet"], users=[USER], tokens=[TOKEN])
    ok, said = run_stage(settings_for(emu, tmp_path, ct_bridge="vmbr1"), caplog)
    assert ok, said
    assert "bridge=vmbr1" in emu.load_conf(vmid)["net0"]


def permission_reads(emu: PveEmulator) -> list[str]:
    return [path for _method, path, _status in emu.request_log if "/access/permissions" in path]


def test_the_check_is_one_call(
    make_node: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emu = make_node()
    assert run_stage(settings_for(emu, tmp_path), caplog)[0]
    assert permission_reads(emu) == ["/api2/json/access/permissions"]
    # an entry the dump cannot see past (PVEAuditor without propagate on /vms, beside the
    # propagating role): the container's own path is asked for, and the run goes on
    emu.request_log.clear()
    emu.user_cfg.grant("/vms", ["PVEAuditor"], users=[USER], tokens=[TOKEN], propagate=False)
    ok, said = run_stage(settings_for(emu, tmp_path), caplog)
    assert ok, said
    (vmid,) = emu.vmids()
    assert permission_reads(emu) == [
        "/api2/json/access/permissions",
        f"/api2/json/access/permissions?path=%2Fvms%2F{vmid}",
    ]


def test_root_pam_is_not_checked(
    make_node: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emu = make_node(without=("SDN.Use", "/sdn/zones/localnetwork/vmbr0"))
    root_password = tmp_path / "root.password"
    root_password.write_text(ROOT_PASSWORD + "\n")
    root_password.chmod(0o600)
    settings = settings_for(emu, tmp_path, pve_token_id="", pve_user="root@pam",
                            pve_secret_source={"file": str(root_password)})  # fmt: skip
    ok, said = run_stage(settings, caplog)
    assert ok, said
    assert permission_reads(emu) == []
    assert ROOT_PASSWORD not in said
