"""The container this deploy created, and what it cannot change on one that exists: the stage
in process against the emulator (whose tags and description follow PVE: pve-api NOTES.md §1,
"tags? pve-tag-list … stored lowercased, de-duplicated, sorted and ;-joined"; "description
comes back with a trailing \\n"; conf.py keeps it as the conf file's '#' lines).

- a create carries the tag ``egograph-deploy`` and a creation record in its description
- ``deploys/destroy.py`` destroys that container, then has nothing to do; it refuses a
  container without the tag, naming it, and destroys nothing
- ct_disk_gb, ct_storage, ct_ostemplate and ct_ssh_public_keys changed on an existing
  container: a warning naming each setting on every run, a ``not_applied`` item for the
  drift report, never "matches the settings"
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deploys import proxmox
from deploys.common.envvars import REASONS_FILE_ENV
from deploys.proxmox import access
from deploys.proxmox.spec import ContainerSpec, creation_only_differences, keys_digest
from deploys.proxmox.tasks import wait_task
from tests.sandbox.pve.emulator import PveEmulator
from tests.unit.proxmox.stage import run_stage, stage_settings

PRESENT = "CT egograph-prod exists with the runbook's spec"


@pytest.fixture(autouse=True)
def ssh_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """FakeBackend's addresses are no machines: each SSH port counts as open."""
    monkeypatch.setattr(access, "ssh_port_open", lambda *a, **k: True)


def settings(emu: PveEmulator, tmp_path: Path, creds: Any, **overrides: Any) -> Any:
    return stage_settings(
        emu, tmp_path, token=creds.DEPLOY_TOKEN, secret=creds.DEPLOY_SECRET, **overrides
    )


def test_a_create_marks_the_container_and_records_what_pve_does_not_keep(
    emulator: PveEmulator, tmp_path: Path, creds: Any, caplog: pytest.LogCaptureFixture
) -> None:
    s = settings(emulator, tmp_path, creds)
    ok, said = run_stage(s, caplog)
    assert ok, said
    (vmid,) = emulator.vmids()
    conf = emulator.load_conf(vmid)
    assert conf["tags"] == "egograph-deploy"
    keys = (tmp_path / "id.pub").read_text()
    assert conf["description"].splitlines() == [
        "Created by egograph-deploy (tag egograph-deploy: deploys/destroy.py may destroy it).",
        "egograph-deploy.template: local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
        f"egograph-deploy.ssh-keys-sha256: {keys_digest(keys)}",
    ]
    # the second run: in sync, and nothing said about settings it cannot apply
    tasks = len(emulator.tasks)
    ok, said = run_stage(s, caplog)
    assert ok and len(emulator.tasks) == tasks, said
    assert not [r for r in caplog.records if r.levelname == "WARNING"], said


def test_destroy_takes_the_container_it_created_then_has_nothing_to_do(
    emulator: PveEmulator, tmp_path: Path, creds: Any, caplog: pytest.LogCaptureFixture
) -> None:
    s = settings(emulator, tmp_path, creds)
    assert run_stage(s, caplog)[0]
    (vmid,) = emulator.vmids()
    ok, said = run_stage(s, caplog, deploy=proxmox.destroy_container)
    assert ok and f"CT {vmid} exists (created by this deploy)" in said, said
    assert emulator.vmids() == []
    assert [t.type for t in emulator.tasks.values()][-2:] == ["vzstop", "vzdestroy"]
    tasks = len(emulator.tasks)
    ok, said = run_stage(s, caplog, deploy=proxmox.destroy_container)
    assert ok and "Success" not in said, said  # the second run: "No changes"
    assert len(emulator.tasks) == tasks  # and no task


@pytest.fixture
def someone_elses(client: Any, create_ct: Any) -> Callable[..., None]:
    """Create a container called egograph-prod through the API, as an admin would, not the
    deploy: no marker tag, no creation record."""

    def make(vmid: int, **extra: Any) -> None:
        wait_task(client, create_ct(client, vmid, hostname="egograph-prod", **extra), timeout=10)

    return make


def test_destroy_refuses_a_container_it_did_not_create(
    emulator: PveEmulator, tmp_path: Path, creds: Any, caplog: pytest.LogCaptureFixture,
    someone_elses: Callable[..., None],
) -> None:  # fmt: skip
    someone_elses(120, tags="prod")  # with a tag of its own
    s = settings(emulator, tmp_path, creds)
    for yes in (False, True):  # refused while deciding (--dry, the prompt) and with -y
        ok, said = run_stage(s, caplog, deploy=proxmox.destroy_container, yes=yes)
        assert not ok
        assert (
            "CT 120 (egograph-prod) was not created by this deploy (it lacks the tag "
            "'egograph-deploy'); deploys/destroy.py destroys only containers it created. "
            "Nothing was destroyed"
        ) in said, said
    assert emulator.vmids() == [120]
    assert not any(t.type in ("vzstop", "vzdestroy") for t in emulator.tasks.values())


CREATION_ONLY = [
    ({"ct_disk_gb": 80}, "ct_disk_gb is 80 but the root disk is 40G (used only at creation"),
    ({"ct_storage": "local"}, "ct_storage is 'local' but the root disk is on 'local-lvm'"),
    (
        {"ct_ostemplate": "debian-13-standard_13.1-2_amd64.tar.zst"},
        "ct_ostemplate is 'local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst' but the "
        "container was created from 'local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst'",
    ),
    ("keys", "ct_ssh_public_keys differ from the keys the container was created with"),
]


def test_the_same_template_on_another_storage_is_not_a_difference(
    emulator: PveEmulator, tmp_path: Path, creds: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert run_stage(settings(emulator, tmp_path, creds), caplog)[0]
    moved = settings(emulator, tmp_path, creds, ct_template_storage="local-lvm")
    (vmid,) = emulator.vmids()
    config = emulator.load_conf(vmid)
    assert creation_only_differences(ContainerSpec.from_settings(moved), config) == []


@pytest.mark.parametrize(
    ("change", "message"), CREATION_ONLY, ids=[m.split(" ")[0] for _, m in CREATION_ONLY]
)
def test_a_creation_only_setting_changed_later_is_warned_on_every_run_never_in_sync(
    emulator: PveEmulator,
    tmp_path: Path,
    creds: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    change: Any,
    message: str,
) -> None:
    assert run_stage(settings(emulator, tmp_path, creds), caplog)[0]
    (vmid,) = emulator.vmids()
    if change == "keys":
        other = tmp_path / "other.pub"
        other.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC other\n")
        change = {"ct_ssh_public_keys": [str(other)]}
    changed = settings(emulator, tmp_path, creds, **change)
    reasons = tmp_path / "reasons.jsonl"
    monkeypatch.setenv(REASONS_FILE_ENV, str(reasons))
    for _ in range(2):
        ok, said = run_stage(changed, caplog)
        assert ok, said
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any(f"CT {vmid}: {message}" in w for w in warnings), warnings
        assert "matches the settings\n" not in said + "\n"
    items = [json.loads(line) for line in reasons.read_text().splitlines()]
    applied = [i for i in items if i.get("kind") == "not_applied"]
    # once per run (the run decides twice: before it would ask, and executing)
    assert len(applied) == 2 and all(message in i["reason"] for i in applied), items
    assert emulator.load_conf(vmid)["rootfs"] == f"local-lvm:vm-{vmid}-disk-0,size=40G"


def test_a_container_found_by_name_that_the_deploy_did_not_create_is_said_so(
    emulator: PveEmulator, tmp_path: Path, creds: Any, caplog: pytest.LogCaptureFixture,
    someone_elses: Callable[..., None], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # the runbook's spec, so only what cannot be compared is said
    someone_elses(130, rootfs="local-lvm:40", memory=3072, swap=1024, cores=2, onboot=True)
    reasons = tmp_path / "reasons.jsonl"
    monkeypatch.setenv(REASONS_FILE_ENV, str(reasons))
    ok, said = run_stage(settings(emulator, tmp_path, creds), caplog)
    assert ok, said
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "[@local] CT 130: ct_ostemplate and ct_ssh_public_keys are not compared: the "
        "container's description has no creation record (it was not created by this version "
        "of the deploy)"
    ], warnings
    # unknown is not different: no drift item for it (the spec matches otherwise)
    assert not reasons.exists() or "not_applied" not in reasons.read_text()
    assert "tags" not in emulator.load_conf(130)  # never marked: destroy.py keeps refusing it
