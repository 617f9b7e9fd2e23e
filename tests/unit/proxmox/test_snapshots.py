"""The snapshot before a release: when (pure), its name, which of the deploy's snapshots
go, the privileges, and the API steps against the emulator (feature check, take, keep N,
reuse, an unknown rollback target, a storage that cannot)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from deploys.proxmox.client import ContainerRef, PveClient
from deploys.proxmox.errors import PveTaskError
from deploys.proxmox.privileges import StagePlan, required_privileges, rollback_need
from deploys.proxmox.snapshots import (
    SnapshotError,
    WantedService,
    beyond_keep,
    can_snapshot,
    listing,
    release_changes,
    rollback,
    snapshot_name,
    take,
    valid_snapname,
)
from deploys.proxmox.tasks import wait_task
from tests.sandbox.pve.emulator import PveEmulator

OLD, NEW = "a" * 40, "b" * 40
SVC = WantedService("egograph-backend", "unit1", "env1")


def states(head: str | None, stamp: dict[str, Any] | None, env: str = "env1") -> dict[str, Any]:
    unit: dict[str, Any] = {"ActiveState": "active", "healthy": True, "env_sha256": env}
    if stamp is not None:
        unit["stamp"] = stamp
    return {"head": head, "units": {SVC.unit: unit}}


RELEASED = {"unit": "unit1", "env": "env1", "commit": OLD}


def test_a_new_commit_is_a_change() -> None:
    reasons = release_changes(states(OLD, RELEASED), NEW, [SVC])
    assert reasons == [f"the checkout moves from {OLD[:12]} to {NEW[:12]}"]


def test_nothing_changing_is_none() -> None:
    assert release_changes(states(OLD, RELEASED), OLD, [SVC]) == []


@pytest.mark.parametrize(
    ("svc", "stamp", "said"),
    [
        (WantedService(SVC.unit, "unit2", "env1"), RELEASED, "unit file changes"),
        (WantedService(SVC.unit, "unit1", "env2"), RELEASED, "env file changes"),
        # kept on the server (None): its digest there is compared
        (WantedService(SVC.unit, "unit1", None), {**RELEASED, "env": "other"}, "env file"),
        # an earlier run moved the checkout and died before the restart
        (SVC, {**RELEASED, "commit": "c" * 40}, f"runs {'c' * 12}"),
    ],
)
def test_config_or_code_behind_the_stamp_is_a_change(
    svc: WantedService, stamp: dict[str, Any], said: str
) -> None:
    (reason,) = release_changes(states(OLD, stamp), OLD, [svc])
    assert said in reason


def test_no_earlier_release_takes_none() -> None:
    # a new container: no checkout, no stamp; a checkout that was never released
    assert release_changes(states(None, None), NEW, [SVC]) == []
    assert release_changes(states(OLD, None), NEW, [SVC]) == []


def test_a_stopped_or_unhealthy_service_alone_is_no_change() -> None:
    s = states(OLD, RELEASED)
    s["units"][SVC.unit].update(ActiveState="failed", healthy=False)
    assert release_changes(s, OLD, [SVC]) == []


def test_the_name_is_a_valid_snapname_after_the_commit() -> None:
    name = snapshot_name("0123456789abcdef" * 2 + "01234567")
    assert name == "egograph_0123456789ab"
    assert valid_snapname(name) and len(name) <= 40
    with pytest.raises(ValueError):
        snapshot_name("main")
    assert not valid_snapname("1abc") and not valid_snapname("a" * 41)
    assert not valid_snapname("current") and not valid_snapname("egograph-1")


def snap(name: str, t: int) -> dict[str, Any]:
    return {"name": name, "snaptime": t}


def test_keep_n_deletes_the_oldest_own_ones_only() -> None:
    listed = [snap("egograph_3", 30), snap("manual", 1), snap("egograph_1", 10),
              snap("egograph_2", 20), {"name": "current", "digest": "x"}]  # fmt: skip
    assert beyond_keep(listed, 3, "egograph_3") == []
    assert beyond_keep(listed, 2, "egograph_3") == ["egograph_1"]
    assert beyond_keep(listed, 1, "egograph_3") == ["egograph_1", "egograph_2"]
    # the one just taken stays, whatever its time says
    assert beyond_keep([snap("egograph_x", 0), snap("egograph_y", 5)], 1, "egograph_x") == [
        "egograph_y"
    ]


def test_the_privileges_follow_the_setting() -> None:
    base = {"vmid": 100, "template_storage": "local", "template_present": True}
    on = required_privileges(StagePlan(**base, snapshots=True))
    off = required_privileges(StagePlan(**base))
    assert ("VM.Snapshot",) in [n.privileges for n in on if n.path == "/vms/100"]
    assert all("VM.Snapshot" not in n.privileges for n in off)
    assert rollback_need(100).label == "VM.Snapshot|VM.Snapshot.Rollback"


# ------------------------------------------------------------------- against the emulator


@pytest.fixture
def ct(client: PveClient, create_ct: Callable[..., str]) -> ContainerRef:
    wait_task(client, create_ct(client, 100), timeout=30)
    return ContainerRef("pve", 100, "stopped")


def test_take_keeps_n_and_reuses_a_name(
    client: PveClient, ct: ContainerRef, emulator: PveEmulator
) -> None:
    assert can_snapshot(client, ct)
    kept = {"keep": 2, "unsupported_ok": False, "timeout": 30, "description": "d"}
    client.post("/nodes/pve/lxc/100/snapshot", snapname="manual")  # not the deploy's
    for name in ("egograph_000000000001", "egograph_000000000002", "egograph_000000000003"):
        assert "taken" in take(client, ct, name=name, **kept)
    names = [s["name"] for s in listing(client, ct)]
    assert sorted(names) == ["current", "egograph_000000000002", "egograph_000000000003", "manual"]
    # a retried release: the existing one is kept, nothing taken
    before = len(emulator.tasks)
    assert "exists already" in take(client, ct, name="egograph_000000000003", **kept)
    assert len(emulator.tasks) == before
    # the backend kept the volumes' part and dropped the deleted one's
    calls = [c for c, _ in emulator.backend.calls]  # type: ignore[attr-defined]
    assert "snapshot egograph_000000000001" in calls
    assert "delsnapshot egograph_000000000001" in calls


def test_a_snapshot_still_being_taken_is_waited_for(
    client: PveClient, ct: ContainerRef, emulator: PveEmulator
) -> None:
    # a killed run's snapshot whose task is still running: the rerun waits, then keeps it
    conf = emulator.load_conf(100)
    conf["snapshots"]["egograph_000000000001"] = {"snapstate": "prepare", "snaptime": 1}
    emulator.write_conf(100, conf)
    with pytest.raises(SnapshotError, match="still incomplete"):
        take(client, ct, name="egograph_000000000001", description="", keep=3,
             unsupported_ok=False, timeout=0.5)  # fmt: skip


def test_a_storage_that_cannot_snapshot(
    client: PveClient, create_ct: Callable[..., str], emulator: PveEmulator
) -> None:
    wait_task(client, create_ct(client, 101, rootfs="local-dir:8"), timeout=30)
    ref = ContainerRef("pve", 101, "stopped")
    assert not can_snapshot(client, ref)
    args = {"name": "egograph_000000000001", "description": "", "keep": 3, "timeout": 30}
    with pytest.raises(SnapshotError, match="pve_snapshot_unsupported_ok"):
        take(client, ref, unsupported_ok=False, **args)
    assert "no snapshot" in take(client, ref, unsupported_ok=True, **args)
    assert [s["name"] for s in listing(client, ref)] == ["current"]
    # PVE itself fails the task (Plugin.pm volume_snapshot), leaving no entry and no lock
    upid = client.post("/nodes/pve/lxc/101/snapshot", snapname="x1")
    with pytest.raises(Exception, match="can't snapshot this image format"):
        wait_task(client, upid, timeout=30)
    conf = emulator.load_conf(101)
    assert conf["snapshots"] == {} and "lock" not in conf


def test_rollback_to_an_unknown_snapshot_changes_nothing(
    client: PveClient, ct: ContainerRef, emulator: PveEmulator
) -> None:
    before = len(emulator.tasks)
    with pytest.raises(SnapshotError, match="no snapshot 'egograph_nothere'"):
        rollback(client, ct, "egograph_nothere", timeout=30)
    assert len(emulator.tasks) == before


def test_rollback_restores_and_starts(
    client: PveClient, ct: ContainerRef, emulator: PveEmulator
) -> None:
    take(client, ct, name="egograph_000000000001", description="", keep=3,
         unsupported_ok=False, timeout=30)  # fmt: skip
    client.update_config("pve", 100, {"cores": 4})
    rollback(client, ct, "egograph_000000000001", timeout=30)
    conf = emulator.load_conf(100)
    assert int(conf.get("cores", 1)) != 4 and conf["parent"] == "egograph_000000000001"
    assert emulator.backend.status(100) == "running"
    calls = [c for c, _ in emulator.backend.calls]  # type: ignore[attr-defined]
    assert "rollback egograph_000000000001" in calls
    # the start was a task of its own, waited for (the rollback task ended before it)
    assert [t.type for t in emulator.tasks.values()][-2:] == ["vzrollback", "vzstart"]


def test_a_start_that_fails_after_the_rollback_is_reported(
    client: PveClient, ct: ContainerRef, emulator: PveEmulator
) -> None:
    take(client, ct, name="egograph_000000000001", description="", keep=3,
         unsupported_ok=False, timeout=30)  # fmt: skip
    emulator.inject_task_fault("vzstart", fail="startup for container '100' failed")
    with pytest.raises(PveTaskError, match="startup for container '100' failed"):
        rollback(client, ct, "egograph_000000000001", timeout=30)
    assert emulator.backend.status(100) != "running"


# ------------------------------------------------------------------------ the operation


def _op_kwargs(commit: str) -> dict[str, Any]:
    from deploys.proxmox.access import Pve
    from deploys.services.operations import ServiceProbe

    pve = Pve(host="pve.example", port=8006, node="pve", token_id="deploy@pve!egograph",
              user="", secret_environ="PVE_TOKEN_SECRET", secret_file="", ca_bundle="",
              fingerprint="", insecure=False, timeout=30, task_timeout=60, vmid=0,
              hostname="egograph-prod", static_ip="", known_hosts="/tmp/kh")  # fmt: skip
    probe = ServiceProbe(units=(SVC.unit,), health_urls=("http://127.0.0.1:8000/health",),
                         env_files=("/opt/egograph/repo/.env",), repo_path="/opt/egograph/repo")  # fmt: skip
    return {"services": (SVC,), "probe": probe, "commit": commit, "pve": pve, "keep": 3,
            "unsupported_ok": False}  # fmt: skip


def test_the_operation_takes_nothing_and_calls_nothing_without_a_change() -> None:
    from deploys.proxmox.release_snapshot import snapshot_before_release
    from deploys.services.facts import ServiceStates
    from tests.unit.fakes import run_op

    fake = run_op(snapshot_before_release, {ServiceStates: states(OLD, RELEASED)},
                  **_op_kwargs(OLD))  # fmt: skip
    assert fake.commands == [] and fake.noops == [
        "the release changes nothing a snapshot would keep"
    ]
    fake = run_op(snapshot_before_release, {ServiceStates: states(None, None)},
                  **_op_kwargs(NEW))  # fmt: skip
    assert fake.commands == [] and fake.noops == ["no earlier release to keep"]


def test_the_operation_snapshots_a_new_commit_by_its_name() -> None:
    from deploys.proxmox.release_snapshot import snapshot_before_release
    from deploys.services.facts import ServiceStates
    from tests.unit.fakes import run_op

    fake = run_op(snapshot_before_release, {ServiceStates: states(OLD, RELEASED)},
                  **_op_kwargs(NEW))  # fmt: skip
    (command,) = fake.commands
    assert command.function.__name__ == f"snapshot_egograph_{NEW[:12]}"
