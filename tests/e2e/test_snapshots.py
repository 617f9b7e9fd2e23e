"""Snapshots before a release, keep N, and ``egodeploy rollback --snapshot``, on the
emulated Proxmox node backed by real sandbox containers (a snapshot there keeps a copy of
the container's disk, so a rollback really puts its files back).

The deploy runs as a user runs it (``pyinfra -y inventory.py deploys/prod.py``); assertions
read pyinfra's JSON report, the emulator's snapshots and tasks, and the container itself.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.sandbox.app import site as app_site
from tests.sandbox.pve.deploy_site import DeploySite
from tests.sandbox.runner import PyinfraRun, egodeploy, pyinfra

pytestmark = pytest.mark.e2e

SNAPSHOT_OP = "Proxmox snapshot | Snapshot CT egograph-prod before a release"


def ok(run: PyinfraRun) -> PyinfraRun:
    assert run.returncode == 0, run.output[-4000:]
    return run


def release(n: int) -> str:
    return app_site.publish_app(
        f"release {n}", {"egograph/backend/__init__.py": f'RELEASE = "{n}"\n'}
    )


def test_snapshot_taken_kept_n_and_reverted(empty_node: Callable[..., DeploySite]) -> None:
    s = empty_node()
    hosts = s.hosts(ct_tun_method="raw", pve_snapshot_keep=2)

    # the first release of a new container: nothing to go back to, no snapshot
    first = ok(pyinfra(hosts, "-y", "--json"))
    assert SNAPSHOT_OP not in " ".join(first.changed_ops())
    assert s.snapshots() == [] and "vzsnapshot" not in s.task_types()
    # a no-op deploy takes none: 0 changes, no task
    tasks = s.task_types()
    again = ok(pyinfra(hosts, "-y", "--json"))
    assert again.totals()["success"] == 0, again.changed_ops()
    assert s.task_types() == tasks

    # a new commit: --dry says it would snapshot and takes nothing
    r2 = release(2)
    dry = ok(pyinfra(hosts, "--dry", "--json"))
    assert any(op.startswith(SNAPSHOT_OP) for op in dry.changed_ops()), dry.changed_ops()
    assert s.snapshots() == []
    # the release: a snapshot named after its commit, taken before the checkout moved
    two = ok(pyinfra(hosts, "-y", "--json"))
    assert any(op.startswith(SNAPSHOT_OP) for op in two.changed_ops()), two.changed_ops()
    assert s.snapshots() == [f"egograph_{r2[:12]}"]
    assert s.head() == r2 and s.health()["release"] == "2"

    # keep 2: after three releases, the two newest remain
    r3 = release(3)
    ok(pyinfra(hosts, "-y", "--json"))
    r4 = release(4)
    four = ok(pyinfra(hosts, "-y", "--json"))
    assert s.snapshots() == sorted([f"egograph_{r3[:12]}", f"egograph_{r4[:12]}"])
    assert s.task_types().count("vzsnapshot") == 3
    assert s.task_types().count("vzdelsnapshot") == 1
    assert s.head() == r4 and s.health()["release"] == "4"
    assert app_site.CANARY not in four.output

    listed = egodeploy(hosts, "rollback", "--list")
    assert listed.returncode == 0, listed.stderr
    assert f"egograph_{r3[:12]}" in listed.stdout and f"egograph_{r4[:12]}" in listed.stdout

    # an unknown snapshot: a clear error, nothing changed
    tasks = s.task_types()
    unknown = egodeploy(hosts, "rollback", "--snapshot", "egograph_000000000000")
    assert unknown.returncode == 1
    assert "has no snapshot 'egograph_000000000000'" in unknown.stderr, unknown.stderr
    assert "nothing was changed" in unknown.stderr
    assert s.task_types() == tasks

    # a file written after the snapshot; the rollback to the snapshot taken before r4
    s.container().ssh("echo after > /root/written-after-the-snapshot")
    back = egodeploy(hosts, "rollback", "--snapshot", f"egograph_{r4[:12]}", timeout=600)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "healthy" in back.stdout and r3[:12] in back.stdout, back.stdout
    assert "vzrollback" in s.task_types()
    probe = s.container().ssh("test -e /root/written-after-the-snapshot && echo yes || echo no")
    assert probe.stdout.strip() == "no"
    assert s.head() == r3 and s.health()["release"] == "3"
    active = s.container().ssh("systemctl is-active egograph-backend").stdout.strip()
    assert active == "active"
    assert app_site.CANARY not in back.stdout + back.stderr


def test_a_storage_that_cannot_snapshot_stops_the_release_unless_allowed(
    empty_node: Callable[..., DeploySite],
) -> None:
    s = empty_node()
    hosts = s.hosts(ct_tun_method="raw")
    ok(pyinfra(hosts, "-y", "--json"))
    r1 = s.head()
    # the container's disk on a dir storage (a raw volume: PVE cannot snapshot it)
    conf = s.node.conf_dir / "100.conf"
    text = conf.read_text()
    volume = next(ln for ln in text.splitlines() if ln.startswith("rootfs: "))
    conf.write_text(text.replace(volume, "rootfs: local-dir:100/vm-100-disk-0.raw,size=8G", 1))
    hosts = s.hosts(ct_tun_method="raw", ct_storage="local-dir")

    r2 = release(2)
    stopped = pyinfra(hosts, "-y", "--json")
    assert stopped.returncode != 0
    assert "storage cannot snapshot it" in stopped.output, stopped.output[-3000:]
    assert "pve_snapshot_unsupported_ok" in stopped.output
    # stopped before the checkout moved: the old release still runs
    assert s.head() == r1 and s.health()["release"] == "1"
    assert s.snapshots() == [] and "vzsnapshot" not in s.task_types()

    # allowed: the release goes on without a snapshot, with a warning
    allowed = ok(pyinfra(hosts, "-y", "--json", "--data", "pve_snapshot_unsupported_ok=True"))
    assert "releasing without a snapshot" in allowed.output
    assert s.head() == r2 and s.health()["release"] == "2"
    assert s.snapshots() == []
