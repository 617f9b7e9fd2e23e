"""The README's least-privilege role is exactly enough for the Proxmox stage.

The role's privileges are parsed from README's Proxmox section (``pveum role add
EgographDeploy -privs "..."``), so the README and this test cannot drift. A token holding
exactly them runs the real Proxmox stage (``deploys.proxmox.ensure_container``, in process
through pyinfra's API, the node as ``@local``) against the emulator (FakeBackend, schema
permissions enforced) from an empty node: node lookup, template download, create, start,
the address from ``/interfaces``; then a settings change (config ``PUT``) and a rerun that
changes nothing. A token missing any one of them fails with a message naming it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.operations import run_ops

from deploys import proxmox
from deploys.inventory import NODE_ROLE, ROLE, group_data
from deploys.proxmox import access
from deploys.settings import validate
from tests.sandbox.pve.emulator import PveEmulator

PROJECT = Path(__file__).resolve().parents[3]
TOKEN = "deploy@pve!egograph"
SECRET = "lp-canary-token-secret-7d41"


def readme_role() -> list[str]:
    """The privileges of the role in README's Proxmox section."""
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Proxmox", 1)[1].split("\n## ", 1)[0]
    joined = section.replace("\\\n", " ")
    m = re.search(r'pveum role add EgographDeploy -privs "([^"]+)"', joined)
    assert m, "README's Proxmox section has no `pveum role add EgographDeploy -privs` line"
    privs = m.group(1).split()
    assert privs and all(re.fullmatch(r"[A-Z][A-Za-z]+(\.[A-Za-z]+)+", p) for p in privs), privs
    return privs


ROLE_PRIVS = readme_role()


@pytest.fixture(autouse=True)
def _fresh_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access, "_clients", {})
    # FakeBackend addresses are not real machines: their SSH port counts as open
    monkeypatch.setattr(access, "ssh_port_open", lambda *a, **k: True)


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Any]:
    made: list[PveEmulator] = []

    def make(privs: list[str]) -> PveEmulator:
        emu = PveEmulator(
            tmp_path / f"pve{len(made)}",
            tokens={TOKEN: {"secret": SECRET, "privs": {"/": privs}}},
            auth_delay=0.0,
            templates=(),  # an empty node: the template must be downloaded
        ).start(port=0)
        made.append(emu)
        return emu

    yield make
    for emu in made:
        emu.stop()


def settings_for(emu: PveEmulator, tmp_path: Path, **overrides: Any) -> Any:
    env = tmp_path / "backend.env"
    env.write_text("A=1\n")
    env.chmod(0o600)
    secret = tmp_path / "token.secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    key = tmp_path / "id.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB test\n")
    data = group_data(PROJECT / "group_data")
    data.update(
        services=[dict(data["services"][0], env_source={"file": str(env)})],
        pve_host="127.0.0.1",
        pve_port=emu.port,
        pve_token_id=TOKEN,
        pve_secret_source={"file": str(secret)},
        pve_ca_bundle=str(emu.ca_path),
        pve_task_timeout=30,
        # the API side only: raw edits the conf file over SSH as root, dev is root@pam's
        ct_tun_method="none",
        tailscale_userspace=True,
        ct_ssh_public_keys=[str(key)],
        **overrides,
    )
    return validate(data)


def run_stage(settings: Any, caplog: pytest.LogCaptureFixture) -> tuple[bool, str]:
    """The Proxmox stage through pyinfra's API; (success, everything it said)."""
    caplog.clear()
    inventory = Inventory(([("@local", {ROLE: NODE_ROLE})], {}))
    state = State(inventory, Config())
    error = ""
    with caplog.at_level(logging.INFO):
        try:
            connect_all(state)
            add_deploy(state, proxmox.ensure_container, settings=settings)
            run_ops(state)
        except Exception as exc:  # pyinfra/an operation gave up: the reason is the message
            error = f"{type(exc).__name__}: {exc}"
        finally:
            disconnect_all(state)
    results = [state.get_results_for_host(h) for h in inventory]
    ok = not error and all(r.error_ops == 0 for r in results) and not state.failed_hosts
    return ok, "\n".join([error, *(r.getMessage() for r in caplog.records)])


def test_the_readme_role_is_parsed() -> None:
    assert len(ROLE_PRIVS) == len(set(ROLE_PRIVS)) >= 5
    assert {"VM.Allocate", "VM.PowerMgmt", "Datastore.AllocateTemplate"} <= set(ROLE_PRIVS)


def test_the_readme_role_runs_the_proxmox_stage(
    make_node: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emu = make_node(ROLE_PRIVS)
    ok, said = run_stage(settings_for(emu, tmp_path), caplog)
    assert ok, said
    assert "Permission check failed" not in said
    types = [t.type for t in emu.tasks.values()]
    assert sorted(types) == ["download", "vzcreate", "vzstart"], types
    (vmid,) = emu.vmids()
    assert emu.backend.status(vmid) == "running"

    # a changed spec is PUT to the running container (VM.Config.*)
    changed = settings_for(emu, tmp_path, ct_cores=3, ct_memory_mb=2048, ct_swap_mb=512,
                           ct_disk_gb=40, ct_onboot=False)  # fmt: skip
    ok, said = run_stage(changed, caplog)
    assert ok, said
    conf = emu.load_conf(vmid)
    effective = {**conf, **conf.get("pending", {})}
    assert (int(effective["cores"]), int(effective["memory"])) == (3, 2048), conf
    # and the run after changes nothing and starts no task
    before = len(emu.tasks)
    ok, said = run_stage(changed, caplog)
    assert ok, said
    assert len(emu.tasks) == before
    assert SECRET not in said


@pytest.mark.parametrize("missing", ROLE_PRIVS)
def test_a_token_missing_one_privilege_fails_naming_it(
    missing: str, make_node: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emu = make_node([p for p in ROLE_PRIVS if p != missing])
    said = ""
    # from an empty node, then a spec change on the existing container: the stage as a
    # user meets it; the first refusal ends the sequence
    for overrides in ({}, {"ct_cores": 3, "ct_memory_mb": 2048, "ct_swap_mb": 512,
                           "ct_onboot": False, "ct_bridge": "vmbr1"}):  # fmt: skip
        ok, said = run_stage(settings_for(emu, tmp_path, **overrides), caplog)
        if not ok:
            break
    else:
        pytest.fail(f"the stage ran without {missing}: README's role lists a needless privilege")
    # PVE's 403 names it ("Permission check failed (/vms/100, VM.PowerMgmt)"); where PVE
    # answers with silence instead (no VM.Audit: /cluster/resources omits the container)
    # the deploy names it itself
    assert re.search(rf"(?<![\w.]){re.escape(missing)}(?![\w.])", said), said
    assert SECRET not in said
