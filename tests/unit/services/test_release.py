"""The release script in a real shell, against a real git checkout, with systemd, curl and
journalctl played by small stand-ins that keep a log: a release is all of its services or
none, a crash ends the wait at once, a new service that never came up is stopped and
disabled. (What systemd itself reports is checked against the real one in
tests/e2e/test_two_services.py and test_faults.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploys.services.history import parse_history
from deploys.services.release import ManualRollback, ReleaseUnit, release_script

SYSTEMCTL = r"""#!/bin/sh
# systemctl as the release script uses it. A (re)started unit runs the checkout's HEAD;
# "$FAKE/broken" lists "<unit> <commit>" pairs that crash at start (exit status 1).
echo "systemctl $*" >> "$FAKE/log"
verb=$1; shift
[ "$1" = --quiet ] && shift
[ "$1" = --now ] && shift
[ "$1" = -- ] && shift
unit=${1%.service}
case "$verb" in
  restart|start)
    head=$(git -C "$REPO" rev-parse HEAD)
    if grep -qx "$unit $head" "$FAKE/broken" 2>/dev/null; then
      printf 'activating auto-restart 1 exit-code\n' > "$FAKE/$unit.state"
    else
      printf 'active running 0 success\n' > "$FAKE/$unit.state"
    fi ;;
  disable) printf 'inactive dead 0 success\n' > "$FAKE/$unit.state" ;;
  show)
    while [ "$1" = -p ]; do shift 2; done
    [ "$1" = -- ] && shift
    unit=${1%.service}
    read -r active sub status result < "$FAKE/$unit.state"
    printf 'ActiveState=%s\nSubState=%s\nNRestarts=0\nResult=%s\nExecMainStatus=%s\n' \
      "$active" "$sub" "$result" "$status" ;;
esac
exit 0
"""

CURL = r"""#!/bin/sh
# curl -fsS -o /dev/null --max-time 5 URL: 200 when the unit behind URL is active.
for url; do :; done
unit=$(sed -n "s|^$url ||p" "$FAKE/urls")
read -r active rest < "$FAKE/$unit.state"
[ "$active" = active ]
"""

JOURNALCTL = """#!/bin/sh
echo "journal of $2: RuntimeError: this release cannot start"
"""

UV = """#!/bin/sh
echo "uv $* in $(pwd)" >> "$FAKE/log"
"""
RESYNC = "uv sync --all-packages --locked --no-progress"


@dataclass
class World:
    root: Path
    repo: Path
    state: Path
    fake: Path
    good: str
    new: str

    def run(
        self,
        units: list[ReleaseUnit],
        verbs: dict[str, str],
        timeout: int = 60,
        keep: int = 5,
        manual: ManualRollback | None = None,
    ) -> tuple[subprocess.CompletedProcess[str], float]:
        script = release_script(
            keep=keep,
            manual=manual,
            units=units,
            verbs=verbs,
            health_timeout=timeout,
            repo_path=str(self.repo),
            ref="main",
            state_dir=str(self.state),
            resync=RESYNC,
        )
        env = {
            **os.environ,
            "PATH": f"{self.root / 'bin'}:{os.environ['PATH']}",
            "FAKE": str(self.fake),
            "REPO": str(self.repo),
        }
        started = time.monotonic()
        proc = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
        return proc, time.monotonic() - started

    def log(self) -> list[str]:
        return (self.fake / "log").read_text().splitlines()

    def head(self) -> str:
        return git(self.repo, "rev-parse", "HEAD")

    def stamp(self, unit: str) -> dict[str, str]:
        return dict(json.loads((self.state / f"{unit}.started.json").read_text()))

    def history(self) -> list[str]:
        path = self.state / "releases.json"
        return [e["commit"] for e in parse_history(path.read_text())] if path.exists() else []

    def refs(self) -> list[str]:
        out = git(self.repo, "for-each-ref", "--format=%(refname)", "refs/egograph/releases/")
        return sorted(r.rsplit("/", 1)[-1] for r in out.split())


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def unit(root: Path, name: str, port: int) -> ReleaseUnit:
    return ReleaseUnit(
        unit=name,
        unit_file=str(root / f"{name}.service"),
        env_file=str(root / f"{name}.env"),
        health_url=f"http://127.0.0.1:{port}/health",
    )


BACKEND, PIPELINES = "egograph-backend", "egograph-pipelines"


@pytest.fixture
def world(tmp_path: Path) -> World:
    """A checkout at the new commit (synced: its .venv says so) whose last good release,
    one commit earlier, both services ran healthy: stamps, good copies, the environment
    snapshot."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_ins = (("systemctl", SYSTEMCTL), ("curl", CURL), ("journalctl", JOURNALCTL), ("uv", UV))
    for name, text in stand_ins:
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    repo, state, fake = tmp_path / "repo", tmp_path / "state", tmp_path / "fake"
    fake.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    for key, value in (("user.email", "t@example.invalid"), ("user.name", "t")):
        git(repo, "config", key, value)
    (repo / ".gitignore").write_text(".venv*\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "good")
    good = git(repo, "rev-parse", "HEAD")
    (repo / "app.py").write_text("new\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "new")
    new = git(repo, "rev-parse", "HEAD")
    (repo / ".venv").mkdir()
    (repo / ".venv" / "synced").write_text(new)
    (repo / ".venv.rollback").mkdir()
    (repo / ".venv.rollback" / "synced").write_text(good)
    urls = []
    for name, port in ((BACKEND, 8000), (PIPELINES, 8001)):
        u = unit(tmp_path, name, port)
        Path(u.unit_file).write_text(f"{name} unit, new\n")
        Path(u.env_file).write_text(f"{name} env, new\n")
        (state / f"{name}.good").mkdir(parents=True)
        (state / f"{name}.good" / "unit").write_text(f"{name} unit, good\n")
        (state / f"{name}.good" / "env").write_text(f"{name} env, good\n")
        stamp = {"unit": "u-good", "env": "e-good", "commit": good}
        (state / f"{name}.started.json").write_text(json.dumps(stamp))
        (fake / f"{name}.state").write_text("active running 0 success\n")
        urls.append(f"{u.health_url} {name}\n")
    (fake / "urls").write_text("".join(urls))
    return World(tmp_path, repo, state, fake, good, new)


def both(w: World) -> list[ReleaseUnit]:
    return [unit(w.root, BACKEND, 8000), unit(w.root, PIPELINES, 8001)]


def test_a_release_whose_services_all_come_up_is_recorded_for_each(world: World) -> None:
    proc, _ = world.run(both(world), {BACKEND: "restart", PIPELINES: "restart"})

    assert proc.returncode == 0, proc.stderr
    for name in (BACKEND, PIPELINES):
        assert world.stamp(name)["commit"] == world.new
        good = world.state / f"{name}.good"
        assert (good / "unit").read_text() == f"{name} unit, new\n"
        assert (good / "env").read_text() == f"{name} env, new\n"
    # The old environment is dropped only now that every service is healthy.
    assert not (world.repo / ".venv.rollback").exists()
    assert not (world.state / "release.rolled-back.json").exists()


def test_one_failing_service_returns_every_service_to_the_last_good_release(
    world: World,
) -> None:
    (world.fake / "broken").write_text(f"{PIPELINES} {world.new}\n")

    proc, seconds = world.run(both(world), {BACKEND: "restart", PIPELINES: "restart"})

    assert proc.returncode == 1
    # The backend came up healthy first, yet kept nothing of the new release.
    # Every (re)start first flushes systemd's start rate limit (reset-failed).
    assert world.log() == [
        f"systemctl reset-failed {BACKEND}.service",
        f"systemctl restart {BACKEND}.service",
        f"systemctl reset-failed {PIPELINES}.service",
        f"systemctl restart {PIPELINES}.service",
        f"systemctl show -p ActiveState -p SubState -p NRestarts -p Result -p ExecMainStatus "
        f"-- {PIPELINES}.service",
        "systemctl daemon-reload",
        f"systemctl reset-failed {BACKEND}.service",
        f"systemctl restart {BACKEND}.service",
        f"systemctl reset-failed {PIPELINES}.service",
        f"systemctl restart {PIPELINES}.service",
        # Once both are back: the checkout's files are new to uv, synced once more.
        f"uv {RESYNC.removeprefix('uv ')} --quiet in {world.repo}",
    ]
    assert world.head() == world.good
    assert (world.repo / ".venv" / "synced").read_text() == world.good
    assert not (world.repo / ".venv.rollback").exists()
    assert not (world.repo / ".venv.failed").exists()  # the new release's, dropped at the end
    for name in (BACKEND, PIPELINES):
        assert world.stamp(name)["commit"] == world.good
        assert Path(unit(world.root, name, 0).unit_file).read_text() == f"{name} unit, good\n"
        assert Path(unit(world.root, name, 0).env_file).read_text() == f"{name} env, good\n"
        assert (world.fake / f"{name}.state").read_text().startswith("active ")
    marker = json.loads((world.state / "release.rolled-back.json").read_text())
    assert {k: marker[k] for k in ("failed_commit", "failed_service", "restored_commit")} == {
        "failed_commit": world.new,
        "failed_service": PIPELINES,
        "restored_commit": world.good,
    }
    assert f"{PIPELINES}.service is crash-looping: it exited (status 1" in proc.stderr
    assert f"journal of {PIPELINES}.service: RuntimeError" in proc.stderr
    assert f"ROLLED BACK: release {world.new} failed ({PIPELINES})" in proc.stderr
    # The crash ended the wait: nowhere near the 60 s health timeout.
    assert seconds < 10


def test_a_crash_ends_the_wait_at_once_and_a_hung_one_at_the_timeout(world: World) -> None:
    (world.fake / "broken").write_text(f"{BACKEND} {world.new}\n")
    _, crashed = world.run(both(world)[:1], {BACKEND: "restart"}, timeout=30)
    assert crashed < 5

    # Up as far as systemd can tell, yet never answering: only the timeout ends the wait.
    (world.fake / "urls").write_text("")
    proc, hung = world.run(both(world)[:1], {BACKEND: "restart"}, timeout=2)
    assert "did not answer 200 on http://127.0.0.1:8000/health within 2s" in proc.stderr
    assert hung >= 2


def test_a_new_service_that_never_came_up_is_stopped_and_disabled(world: World) -> None:
    git(world.repo, "checkout", "-q", world.good)  # nothing else moves: only a new service
    (world.state / f"{PIPELINES}.started.json").unlink()
    (world.fake / "broken").write_text(f"{PIPELINES} {world.good}\n")

    proc, _ = world.run(both(world), {PIPELINES: "start"})

    assert proc.returncode == 1
    assert world.log()[-1] == f"systemctl disable --quiet --now {PIPELINES}.service"
    assert f"{PIPELINES} never became healthy: stopped and disabled" in proc.stderr
    assert f"journal of {PIPELINES}.service" in proc.stderr
    # Its unit and env file stay for inspection; nothing was rolled back, no marker.
    assert Path(unit(world.root, PIPELINES, 0).unit_file).exists()
    assert Path(unit(world.root, PIPELINES, 0).env_file).exists()
    assert not (world.state / "release.rolled-back.json").exists()
    assert f"systemctl restart {BACKEND}.service" not in world.log()


def test_a_new_service_failing_in_a_new_release_rolls_the_others_back(world: World) -> None:
    (world.state / f"{PIPELINES}.started.json").unlink()
    (world.fake / "broken").write_text(f"{PIPELINES} {world.new}\n")

    proc, _ = world.run(both(world), {BACKEND: "restart", PIPELINES: "start"})

    assert proc.returncode == 1
    assert f"systemctl disable --quiet --now {PIPELINES}.service" in world.log()
    assert world.log()[-2] == f"systemctl restart {BACKEND}.service"
    assert world.head() == world.good
    assert world.stamp(BACKEND)["commit"] == world.good
    marker = json.loads((world.state / "release.rolled-back.json").read_text())
    assert (marker["failed_commit"], marker["failed_service"]) == (world.new, PIPELINES)


def test_a_healthy_release_is_recorded_in_the_history_with_a_ref(world: World) -> None:
    (world.state / "releases.json").write_text(
        json.dumps([{"commit": world.good, "at": "2026-12-01T00:00:00Z"}])
    )
    proc, _ = world.run(both(world), {BACKEND: "restart", PIPELINES: "restart"})
    assert proc.returncode == 0, proc.stderr
    assert world.history() == [world.good, world.new]
    assert world.refs() == sorted([world.good, world.new])
    assert (world.state / "releases.json").stat().st_mode & 0o777 == 0o600


def test_the_history_keeps_release_keep_entries(world: World) -> None:
    proc, _ = world.run(both(world), {BACKEND: "restart"}, keep=1)
    assert proc.returncode == 0, proc.stderr
    git(world.repo, "update-ref", f"refs/egograph/releases/{world.good}", world.good)
    proc, _ = world.run(both(world), {BACKEND: "restart"}, keep=1)
    assert world.history() == [world.new] and world.refs() == [world.new]


def test_a_failed_release_is_not_recorded(world: World) -> None:
    (world.fake / "broken").write_text(f"{BACKEND} {world.new}\n")
    proc, _ = world.run(both(world), {BACKEND: "restart", PIPELINES: "restart"})
    assert proc.returncode == 1
    assert world.history() == [] and world.refs() == []


def test_a_manual_rollback_writes_the_marker_naming_the_commit_it_left(world: World) -> None:
    (world.state / "release.rolled-back.json").write_text("{}")
    left = "f" * 40
    reason = 'manual rollback by o"brien@ctl %s'
    proc, _ = world.run(
        both(world), {BACKEND: "restart"}, manual=ManualRollback(refuse=left, reason=reason)
    )
    assert proc.returncode == 0, proc.stderr
    marker = json.loads((world.state / "release.rolled-back.json").read_text())
    assert marker["failed_commit"] == left and marker["restored_commit"] == world.new
    assert marker["reason"] == reason and marker["failed_service"] == ""
    assert marker["at"].endswith("Z")
    assert world.history() == [world.new]


def test_a_manual_rollback_that_fails_is_rolled_back_as_any_release(world: World) -> None:
    (world.fake / "broken").write_text(f"{BACKEND} {world.new}\n")
    proc, _ = world.run(
        both(world), {BACKEND: "restart"}, manual=ManualRollback(refuse="f" * 40, reason="r")
    )
    assert proc.returncode == 1
    marker = json.loads((world.state / "release.rolled-back.json").read_text())
    assert marker["failed_commit"] == world.new and marker["restored_commit"] == world.good
    assert "reason" not in marker and world.head() == world.good
