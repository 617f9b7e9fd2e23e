"""Crash consistency: the controller killed (``kill -9`` of pyinfra) at 21 points, then one
rerun converges and a second changes nothing.

The points are spread over a first converge from an empty emulated Proxmox node, over an
update of a healthy service, and one cut right after a TUN patch of a running container,
before its restart. A point is ``<phase>:<operation index>+<seconds>``: the kill comes that
many seconds after pyinfra starts its operation number ``index`` (1-based, in the order it
prints them); ``tun:marker`` kills as soon as the owed restart is recorded on the node.

After each kill, this module checks four things:

- one rerun exits 0, and a second rerun changes nothing (pyinfra's own count);
- no temporary secret file is left on the target: not the Tailscale auth key on tmpfs, and
  not an ``*.egograph-deploy.tmp`` upload (env files go through one);
- in the update phase, the service that was healthy before the kill answers afterwards. A
  probe inside the container asks ``/health`` at 5 Hz from before the kill until after the
  rerun. Its log must show answers again within ``RESTART_WINDOW`` seconds of the kill, and
  every request after the rerun answered;
- the TUN point: the rerun makes the restart the killed run owed (the marker on the node),
  and the device is there.

The points tried are written to ``kill-points.json`` in the test's directory, and each failure
message names its point. ``EGOGRAPH_KILL_POINTS="converge:9+0.5,update:3+0"`` replays exactly
the points given.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import container as sandbox_container
from tests.sandbox import site
from tests.sandbox.app import site as app_site
from tests.sandbox.pve import site as pve_site
from tests.sandbox.pve.sandbox_backend import SandboxBackend
from tests.sandbox.runner import PROJECT, PyinfraRun, pyinfra

pytestmark = pytest.mark.e2e

# The operations of a first converge with Proxmox (deploys/prod.py): 1 template, 2 create,
# 3 TUN patch, 4 start, 5 run lock, 6 repository check, 7 apt, 8 Tailscale install, 9 login,
# 10 uv, 11 release guard, 12 checkout, 13 env file, 14 uv sync, 15 DuckDB, 16 unit,
# 17 daemon-reload, 18 start + health, 19 serve.
CONVERGE_POINTS = (
    "converge:1+0",  # the template download task, on the empty node
    "converge:2+0.3",  # the create task
    "converge:3+0.2",  # the TUN patch of the new container
    "converge:4+0.5",  # its first start
    "converge:7+0.5",  # apt
    "converge:8+1.5",  # Tailscale's install
    "converge:9+0.3",  # the login (the auth key on tmpfs)
    "converge:13+0.1",  # the env file (a secret) upload
    "converge:14+1.0",  # uv sync
    "converge:18+0.3",  # the service's first start and health wait
)
# The operations of an update (deploys/update.py): 1 run lock, 2 repository check, 3 release
# guard, 4 checkout, 5 env file, 6 uv sync, 7 DuckDB, 8 unit, 9 daemon-reload, 10 restart +
# health wait + stamps.
UPDATE_POINTS = (
    "update:1+0",  # the state read taking the run lock
    "update:2+0",
    "update:4+0",  # the checkout moving
    "update:4+0.2",
    "update:5+0",  # the env file
    "update:6+0",  # uv sync starting (the environment's snapshot)
    "update:6+0.6",  # uv sync under way
    # the restart and health wait take about 0.6 s here: kills inside it, not after
    "update:10+0",
    "update:10+0.15",
    "update:10+0.3",
)
TUN_POINTS = ("tun:marker",)

RESTART_WINDOW = 10.0
"""Seconds after a kill within which the probe must see the service answer again (a kill
during a restart leaves the restart to finish on the target; the rerun may restart once)."""

SECRET_LEFTOVERS = (
    "test ! -e /run/egograph-deploy/tailscale-authkey || echo /run/egograph-deploy/tailscale-authkey; "
    "find / -xdev -name '*.egograph-deploy.tmp' 2>/dev/null"
)
PROBE = (
    "nohup sh -c 'while :; do "
    'printf "%s %s\\n" "$(date +%s.%N)" '
    '"$(curl -s -o /dev/null -m 1 -w %{http_code} http://127.0.0.1:8000/health)"; '
    "sleep 0.2; done' > /root/probe.log 2>&1 & echo $! > /root/probe.pid"
)


@dataclass(frozen=True)
class Point:
    phase: str
    index: int  # 0 for the marker point
    delay: float

    @classmethod
    def parse(cls, text: str) -> Point:
        phase, _, at = text.partition(":")
        if at == "marker":
            return cls(phase, 0, 0.0)
        index, _, delay = at.partition("+")
        return cls(phase, int(index), float(delay or 0))

    def __str__(self) -> str:
        return (
            f"{self.phase}:marker"
            if self.index == 0
            else f"{self.phase}:{self.index}+{self.delay:g}"
        )


def chosen_points() -> list[Point]:
    replay = os.environ.get("EGOGRAPH_KILL_POINTS")
    texts = replay.split(",") if replay else [*CONVERGE_POINTS, *UPDATE_POINTS, *TUN_POINTS]
    return [Point.parse(t.strip()) for t in texts if t.strip()]


@dataclass
class Killed:
    point: str
    operation: str  # the operation pyinfra had started last when it was killed
    at: float  # time.time() of the kill
    seconds_into_run: float
    exit_code: int
    outcome: str = ""


def kill_at(
    hosts: Path, deploy: str, point: Point, marker: Path | None = None, limit: float = 300
) -> Killed:
    """Run pyinfra and SIGKILL it at ``point``; what it had reached."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyinfra", "-y", "inventory.py", deploy],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "EGOGRAPH_HOSTS_FILE": str(hosts), "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    out = proc.stdout
    threading.Thread(target=lambda: [lines.put(ln) for ln in out], daemon=True).start()
    seen: list[str] = []
    output: list[str] = []
    deadline = started + limit
    try:
        while time.monotonic() < deadline:
            if marker is not None and marker.exists():
                break
            try:
                line = lines.get(timeout=0.01)
            except queue.Empty:
                if proc.poll() is not None and lines.empty():
                    raise AssertionError(
                        f"{point}: pyinfra ended (exit {proc.returncode}) before the point; "
                        f"it started {len(seen)} operations: "
                        + "; ".join(f"{i}. {name}" for i, name in enumerate(seen, 1))
                        + f"\n{''.join(output[-40:])}"
                    ) from None
                continue
            output.append(line)
            op = re.search(r"Starting operation: (.+?)\s*$", line)
            if op:
                seen.append(op.group(1))
                if point.index and len(seen) == point.index:
                    time.sleep(point.delay)
                    break
        else:
            raise AssertionError(f"{point}: not reached within {limit}s")
        at = time.time()
        proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=30)
        assert code == -signal.SIGKILL, (
            f"{point}: the run ended (exit {code}) before the kill: choose an earlier point"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
    return Killed(str(point), seen[-1] if seen else "", at, time.monotonic() - started, code)


class Node:
    """An empty emulated Proxmox node, made again for each first-converge point."""

    def __init__(self, tmp: Path, env: Path, n: int):
        prefix = f"k{os.getpid() % 1000}{n}x"
        self.node = pve_site.start_node(tmp / f"pve-{prefix}", version="9.1", prefix=prefix)
        self.backend = SandboxBackend(prefix)
        self.env = env
        self.tmp = tmp

    def hosts(self, **overrides: Any) -> Path:
        data = {**site.settings(self.env), **pve_site.settings(self.node, **overrides)}
        return site.write_hosts_file(self.tmp / "hosts.json", [("egograph-prod", data)])

    def container(self) -> sandbox_container.Container:
        return sandbox_container.get(self.backend.name(100))

    def tasks(self) -> list[str]:
        return [t["type"] for t in self.node.admin("state")["tasks"]]

    def close(self) -> None:
        self.backend.tear_down(self.node)


@pytest.fixture
def nodes(sandbox: None, secret_env: Path, tmp_path: Path) -> Iterator[Callable[[], Node]]:
    app_site.publish_app("fixture")
    made: list[Node] = []

    def make() -> Node:
        if made:
            made[-1].close()  # one node (and its container) at a time
        made.append(Node(tmp_path, secret_env, len(made)))
        return made[-1]

    yield make
    if made:
        made[-1].close()


def converge_twice(hosts: Path, deploy: str, point: str) -> PyinfraRun:
    """The rerun converges; a second rerun changes nothing. The rerun."""
    rerun = pyinfra(hosts, "-y", "--json", deploy=deploy)
    assert rerun.returncode == 0, f"{point}: the rerun failed\n{rerun.output[-4000:]}"
    second = pyinfra(hosts, "-y", "--json", deploy=deploy)
    assert second.returncode == 0, f"{point}: the second rerun failed\n{second.output[-4000:]}"
    assert second.totals()["success"] == 0, f"{point}: second rerun changed {second.changed_ops()}"
    return rerun


def no_secret_left(c: sandbox_container.Container, point: str) -> None:
    left = c.ssh(SECRET_LEFTOVERS, check=False).stdout.split()
    assert left == [], f"{point}: temporary secret files left on the target: {left}"


def probe_log(c: sandbox_container.Container) -> list[tuple[float, str]]:
    rows = []
    for line in c.ssh("cat /root/probe.log").stdout.splitlines():
        stamp, _, code = line.partition(" ")
        rows.append((float(stamp), code.strip()))
    return rows


def answered_after_the_kill(rows: list[tuple[float, str]], killed: Killed, rerun_end: float) -> str:
    """The probe's view of the kill: what answered, and when it answered again."""
    # healthy before the run that was killed (a kill mid-restart cuts a restart it began)
    before = [code for t, code in rows if t < killed.at - killed.seconds_into_run]
    assert before and before[-1] == "200", (
        f"{killed.point}: not healthy before the run: {before[-5:]}"
    )
    after = [(t, code) for t, code in rows if t >= killed.at]
    first_ok = next((t for t, code in after if code == "200"), None)
    assert first_ok is not None, f"{killed.point}: no answer after the kill: {after[:20]}"
    gap = first_ok - killed.at
    assert gap <= RESTART_WINDOW, f"{killed.point}: first answer {gap:.1f}s after the kill"
    settled = [code for t, code in after if t > rerun_end]
    assert settled and all(code == "200" for code in settled), (
        f"{killed.point}: failing after the rerun: {settled}"
    )
    failed = sum(1 for _, code in after if code != "200")
    return f"answered again {gap:.1f}s after the kill; {failed} failed probes after it"


def test_a_controller_killed_at_any_point_leaves_a_rerun_that_converges(
    nodes: Callable[[], Node], tmp_path: Path
) -> None:
    points = chosen_points()
    assert len(points) >= 20 or os.environ.get("EGOGRAPH_KILL_POINTS"), points
    record = tmp_path / "kill-points.json"
    tried: list[Killed] = []

    def save() -> None:
        record.write_text(json.dumps([asdict(k) for k in tried], indent=2))

    print(f"kill points: {', '.join(map(str, points))} (record: {record})")
    node: Node | None = None
    try:
        for point in (p for p in points if p.phase == "converge"):
            node = nodes()
            hosts = node.hosts(ct_tun_method="raw")
            killed = kill_at(hosts, "deploys/prod.py", point)
            tried.append(killed)
            save()
            converge_twice(hosts, "deploys/prod.py", str(point))
            c = node.container()
            no_secret_left(c, str(point))
            health = json.loads(c.ssh("curl -fsS http://127.0.0.1:8000/health").stdout)
            assert health["status"] == "ok", (point, health)
            killed.outcome = f"converged; {node.tasks()}"
            save()

        update = [p for p in points if p.phase == "update"]
        if update:
            if node is None or not node.backend.exists(100):
                node = nodes()
                hosts = node.hosts(ct_tun_method="raw")
                assert pyinfra(hosts, "-y", "--json").returncode == 0
            assert node is not None
            hosts = node.hosts(ct_tun_method="raw")
            c = node.container()
            for n, point in enumerate(update):
                new = app_site.publish_app(
                    f"release {n}", {"egograph/backend/__init__.py": f'RELEASE = "k{n}"\n'}
                )
                c.ssh(PROBE)
                time.sleep(1.0)
                try:
                    killed = kill_at(hosts, "deploys/update.py", point)
                    tried.append(killed)
                    save()
                    converge_twice(hosts, "deploys/update.py", str(point))
                    rerun_end = time.time()
                    time.sleep(1.0)
                finally:
                    c.ssh("kill $(cat /root/probe.pid)", check=False)
                no_secret_left(c, str(point))
                assert c.ssh("git -C /opt/egograph/repo rev-parse HEAD").stdout.strip() == new
                health = json.loads(c.ssh("curl -fsS http://127.0.0.1:8000/health").stdout)
                assert health["release"] == f"k{n}", (point, health)
                killed.outcome = answered_after_the_kill(probe_log(c), killed, rerun_end)
                save()

        for point in (p for p in points if p.phase == "tun"):
            node = nodes()
            plain = node.hosts(ct_tun_method="none", tailscale_userspace=True)
            assert pyinfra(plain, "-y", "--json").returncode == 0
            assert not node.backend.tun_present(100)
            hosts = node.hosts(ct_tun_method="raw", tailscale_userspace=True)
            owed = node.node.conf_dir / "100.egograph-restart"
            killed = kill_at(hosts, "deploys/prod.py", point, marker=owed)
            tried.append(killed)
            save()
            assert owed.exists(), f"{point}: the owed restart is not recorded on the node"
            assert "vzreboot" not in node.tasks(), f"{point}: the kill came after the restart"
            assert not node.backend.tun_present(100)
            rerun = converge_twice(hosts, "deploys/prod.py", str(point))
            assert "Proxmox | CT egograph-prod running with its config in effect" in (
                rerun.changed_ops()
            ), rerun.changed_ops()
            assert node.tasks().count("vzreboot") == 1, node.tasks()
            assert node.backend.tun_present(100) and not owed.exists()
            no_secret_left(node.container(), str(point))
            killed.outcome = "the rerun made the owed restart"
            save()
    finally:
        save()
        print(record.read_text())
