"""Proxmox faults during a one-command run from an empty (emulated) node: the emulator injects
them (``POST /_emulator/faults``), the deploy runs as a user runs it.

- a create task that FAILS: a clear error with the task's UPID and log lines; nothing
  half-made is left (no conf, no container), so the rerun converges;
- tasks ending ``WARNINGS: n``: they succeed and the warnings are shown;
- 596 answers: retried, the run succeeds (and is the 0-change run after the rerun);
- a SLOW task: waited for within ``pve_task_timeout``; past it, a clear timeout error naming
  the UPID, and the run after the task ends converges with 0 changes;
- a token without SDN.Use on the bridge (its own node): ``--dry`` and the real run stop with
  the one privilege message before anything is downloaded or created.

One node and one container serve the fault tests (they run in order); the container is
destroyed at the end.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import site
from tests.sandbox.app import site as app_site
from tests.sandbox.pve import site as pve_site
from tests.sandbox.pve.sandbox_backend import SandboxBackend
from tests.sandbox.runner import PyinfraRun, pyinfra

pytestmark = pytest.mark.e2e

VMID = 100
CREATE_ERROR = "injected: no space left on device while extracting"


class Node:
    def __init__(self, node: pve_site.Node, backend: SandboxBackend, env: Path, tmp: Path):
        self.node = node
        self.backend = backend
        self.env = env
        self.tmp = tmp

    def hosts(self, **overrides: Any) -> Path:
        data = {**site.settings(self.env), "service_health_timeout": 30,
                **pve_site.settings(self.node, ct_tun_method="raw", **overrides)}  # fmt: skip
        return site.write_hosts_file(self.tmp / "hosts.json", [("egograph-prod", data)])

    def fault(self, **spec: Any) -> None:
        self.node.admin("faults", "POST", spec)

    def tasks(self, task_type: str | None = None) -> list[dict[str, Any]]:
        tasks = self.node.admin("state")["tasks"]
        return [t for t in tasks if task_type is None or t["type"] == task_type]

    def wait_tasks_stopped(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while any(t["status"] != "stopped" for t in self.tasks()):
            assert time.monotonic() < deadline, self.tasks()
            time.sleep(0.5)

    def health(self) -> dict[str, Any]:
        from tests.sandbox import container as sandbox_container

        c = sandbox_container.get(self.backend.name(VMID))
        return dict(json.loads(c.ssh("curl -fsS http://127.0.0.1:8000/health").stdout))


@pytest.fixture(scope="module")
def pve(sandbox: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    tmp = tmp_path_factory.mktemp("pve-faults")
    app_site.publish_app()
    prefix = f"pf{time.time_ns() % 100000}x"
    node = pve_site.start_node(tmp / "pve", prefix=prefix)
    n = Node(
        node,
        SandboxBackend(prefix),
        app_site.write_secret_env(f"backend-pve-faults-{os.getpid()}"),
        tmp,
    )
    try:
        yield n
    finally:
        node.admin("faults", "DELETE")
        n.backend.destroy(VMID)  # also a container a failed create might have left
        n.backend.tear_down(node)


def run(hosts: Path, *args: str) -> PyinfraRun:
    return pyinfra(hosts, "-y", "--json", *args, timeout=600)


def ok(r: PyinfraRun) -> PyinfraRun:
    assert r.returncode == 0, r.output[-4000:]
    assert app_site.CANARY not in r.output
    return r


def test_a_failing_create_task_leaves_nothing_and_the_rerun_converges(pve: Node) -> None:
    hosts = pve.hosts()
    pve.fault(task_type="download", warnings=1)
    pve.fault(task_type="vzcreate", fail=CREATE_ERROR)
    failed = run(hosts)
    assert failed.returncode != 0
    out = failed.output
    assert app_site.CANARY not in out
    # the download finished with a warning: shown, and the run went on
    assert "download ubuntu-24.04-standard_24.04-2_amd64.tar.zst: WARN: injected warning 1" in out
    # the create failed: the error names the task and quotes its log
    (create,) = pve.tasks("vzcreate")
    assert create["exitstatus"] == CREATE_ERROR
    assert f"task {create['upid']} failed: {CREATE_ERROR}" in out, out[-4000:]
    assert f"| TASK ERROR: {CREATE_ERROR}" in out
    assert "create CT egograph-prod" in out
    # nothing half-made: no conf, no container, no disk in the way of the rerun
    assert list(pve.node.conf_dir.glob("*.conf")) == []
    assert pve.node.admin("state")["containers"] == {}
    assert not pve.backend.exists(VMID)

    # the rerun converges; its create and start end with WARNINGS and succeed, the start is
    # slow but within pve_task_timeout
    pve.fault(task_type="vzcreate", warnings=2)
    pve.fault(task_type="vzstart", slow=4, warnings=1)
    rerun = ok(run(hosts))
    assert rerun.totals()["error"] == 0
    for line in ("CT 100 create: WARN: injected warning 1",
                 "CT 100 create: WARN: injected warning 2",
                 "CT 100 start: WARN: injected warning 1"):  # fmt: skip
        assert line in rerun.output, rerun.output[-4000:]
    creates = pve.tasks("vzcreate")
    assert [t["exitstatus"] for t in creates] == [CREATE_ERROR, "WARNINGS: 2"]
    (start,) = pve.tasks("vzstart")
    assert start["exitstatus"] == "WARNINGS: 1"
    assert pve.health()["status"] == "ok"
    assert pve.backend.tun_present(VMID)


def test_596_answers_are_retried_and_the_run_after_changes_nothing(pve: Node) -> None:
    before = len(pve.tasks())
    pve.fault(http_status=596, count=3)
    again = ok(run(pve.hosts()))
    assert again.totals()["success"] == 0, again.changed_ops()
    assert "answered 596" in again.output  # the client said it retried
    assert len(pve.tasks()) == before
    # the injected answers were used up by the run
    assert pve.node.api("/version")["version"]


def test_a_slow_task_past_the_timeout_names_its_upid(pve: Node) -> None:
    stop = pve.node.api(f"/nodes/pve/lxc/{VMID}/status/stop", "POST")
    pve.wait_tasks_stopped()
    assert pve.node.admin("state")["containers"][str(VMID)] == "stopped", stop
    pve.fault(task_type="vzstart", slow=25)
    started = time.monotonic()
    timed_out = run(pve.hosts(pve_task_timeout=10))
    assert timed_out.returncode != 0
    assert time.monotonic() - started < 120
    slow = pve.tasks("vzstart")[-1]
    out = timed_out.output
    assert f"task {slow['upid']} still running after 10s" in out, out[-4000:]
    assert app_site.CANARY not in out
    # meanwhile the wait said how it went, every 4 s, behind the host's prefix (the node's:
    # its operations wait; the slow task has logged nothing yet: the time alone)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", timed_out.stderr)
    beats = [int(s) for s in re.findall(r"\[[^\]]+\] +CT 100 start: (\d+) s\n", plain)]
    assert len(beats) >= 2 and beats[0] >= 4, plain[-4000:]
    assert all(b - a >= 4 for a, b in itertools.pairwise(beats)), beats

    # once the task ends the container runs; the rerun converges, the run after: 0 changes
    pve.wait_tasks_stopped()
    assert pve.tasks("vzstart")[-1]["exitstatus"] == "OK"
    hosts = pve.hosts()
    ok(run(hosts))
    after = ok(run(hosts))
    assert after.totals()["success"] == 0, after.changed_ops()
    assert pve.health()["status"] == "ok"


def test_a_token_missing_a_privilege_is_refused_before_anything_changes(
    sandbox: None, tmp_path: Path
) -> None:
    prefix = f"pp{time.time_ns() % 100000}x"
    node = pve_site.start_node(tmp_path / "pve", prefix=prefix, omit=("SDN.Use",))
    try:
        env = app_site.write_secret_env("backend-pve-privileges")
        data = {**site.settings(env), **pve_site.settings(node, ct_tun_method="raw")}
        hosts = site.write_hosts_file(tmp_path / "hosts.json", [("egograph-prod", data)])
        token_secret = (node.state_dir / "token.secret").read_text().strip()
        refusal = (
            "Proxmox privileges: the API token deploy@pve!egograph (pve_token_id) is missing "
            "on /sdn/zones/localnetwork/vmbr0: SDN.Use (needed for: net0 on vmbr0). Nothing "
            "was changed;"
        )
        for args in (("--dry",), ("-y",)):
            run = pyinfra(hosts, *args, timeout=300)
            out = run.output
            assert run.returncode != 0, out[-4000:]
            assert out.count(refusal) == 1, out[-4000:]
            assert "EgographNet" in out
            assert "Permission check failed" not in out  # PVE never refused a change
            assert token_secret not in out and app_site.CANARY not in out
            # nothing happened on the node: no container, no task (no vzcreate, no download)
            state = node.admin("state")
            assert state["containers"] == {} and state["tasks"] == [], state
            assert list(node.conf_dir.glob("*.conf")) == []
    finally:
        node.stop()
