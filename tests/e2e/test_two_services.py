"""Two services, as upstream runs them: the backend and the pipelines factory app, each its
own unit, env file and port, both published on the tailnet (runbook §5 "a second
long-running service"), deployed in one run against the real tailscaled and headscale."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import site
from tests.sandbox.app import site as app_site
from tests.sandbox.runner import drift, pyinfra
from tests.sandbox.tailscale import site as tailscale_site

pytestmark = pytest.mark.e2e


def test_backend_and_pipelines_deployed_healthy_published_and_in_sync(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container()
    pipelines_env = app_site.write_secret_env(f"pipelines-{tmp_path.name}", app="pipelines")
    # Stock headscale: plain HTTP in the tailnet, so both can be asked through it for real.
    base = site.settings(secret_env, pipelines_env, tailnet=tailscale_site.PLAIN)
    backend, pipelines = base["services"]
    backend.update(publish="http")
    pipelines.update(publish="http", publish_port=8080)
    data = {**c.pyinfra_data(), **base, "tailscale_hostname": c.name}
    hosts = site.write_hosts_file(tmp_path / "hosts.json", [(c.name, data)])

    first = pyinfra(hosts, "-y", "--json")
    assert first.returncode == 0, first.output[-3000:]
    for op in (
        # One release for both: they come up, or go back, together.
        "Services | egograph-backend, egograph-pipelines enabled, running the current release, "
        "healthy",
        "Tailscale serve | Publish backend on HTTP 80, pipelines on HTTP 8080",
    ):
        assert op in first.changed_ops(), first.changed_ops()

    # Each its own unit, healthy where the app answers (pipelines only on /v1/health).
    for unit in ("egograph-backend", "egograph-pipelines"):
        assert c.ssh(f"systemctl is-enabled {unit}; systemctl is-active {unit}").stdout.split() == [
            "enabled",
            "active",
        ]  # fmt: skip
    assert json.loads(c.ssh("curl -fsS http://127.0.0.1:8000/health").stdout)["status"] == "ok"
    assert json.loads(c.ssh("curl -fsS http://127.0.0.1:8001/v1/health").stdout)["status"] == "ok"
    assert c.ssh("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8001/health").stdout == (
        "404"
    )
    unit = c.ssh("cat /etc/systemd/system/egograph-pipelines.service").stdout
    assert "uvicorn pipelines.app:create_app --factory --host 127.0.0.1 --port 8001" in unit
    assert "EnvironmentFile=/opt/egograph/repo/egograph/pipelines/.env" in unit

    # Both published under the node's name, and reachable through the tailnet only.
    dns = tailscale_site.fqdn(c.name)
    serve = json.loads(c.ssh("tailscale serve status --json").stdout)
    assert serve == {
        "TCP": {"80": {"HTTP": True}, "8080": {"HTTP": True}},
        "Web": {
            f"{dns}:80": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:8000"}}},
            f"{dns}:8080": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:8001"}}},
        },
    }
    laptop = tailscale_site.HostNode().ensure_up()
    laptop.wait_for_peer(c.name)
    for url in (f"http://{dns}/health", f"http://{dns}:8080/v1/health"):
        answer = laptop.curl(url, "-f")
        assert answer.returncode == 0, (url, answer.stderr)
        assert json.loads(answer.stdout)["status"] == "ok"

    # In sync: the drift check says so, and a second run changes nothing.
    code, report, out = drift(hosts)
    assert (code, report["status"]) == (0, "in_sync"), out[-3000:]
    assert report["hosts"] == {c.name: []}
    again = pyinfra(hosts, "-y", "--json")
    assert again.returncode == 0, again.output[-3000:]
    assert again.totals()["success"] == 0, again.changed_ops()
    assert again.totals()["error"] == 0


REPO = "/opt/egograph/repo"
UNITS = ("egograph-backend", "egograph-pipelines")
HEALTH = {
    "egograph-backend": "http://127.0.0.1:8000/health",
    "egograph-pipelines": "http://127.0.0.1:8001/v1/health",
}


def two_services(c: Any, tmp_path: Path, **overrides: Any) -> Path:
    """Both services, Tailscale left out (these tests are about releases)."""
    backend_env = app_site.write_secret_env(f"backend-{tmp_path.name}")
    pipelines_env = app_site.write_secret_env(f"pipelines-{tmp_path.name}", app="pipelines")
    data = {
        **c.pyinfra_data(),
        **site.settings(backend_env, pipelines_env),
        "tailscale_enabled": False,
        "service_health_timeout": 30,
        **overrides,
    }
    return site.write_hosts_file(tmp_path / "hosts.json", [(c.name, data)])


def answering(c: Any, unit: str) -> dict[str, Any]:
    """The unit's health answer, checked to come from the unit's own process tree: the
    process that answers is MainPID or its child (``uv run`` starts uvicorn)."""
    answer = json.loads(c.ssh(f"curl -fsS {HEALTH[unit]}").stdout)
    main = c.ssh(f"systemctl show -p MainPID --value {unit}").stdout.strip()
    parent = c.ssh(f"ps -o ppid= -p {answer['pid']}").stdout.strip()
    assert main in (str(answer["pid"]), parent), (unit, main, answer["pid"], parent)
    return dict(answer)


def stamp_commit(c: Any, unit: str) -> str:
    return str(
        json.loads(c.ssh(f"cat /var/lib/egograph-deploy/{unit}.started.json").stdout)["commit"]
    )


def test_a_release_that_breaks_only_pipelines_returns_both_services_to_the_last_good_one(
    new_container: Any, tmp_path: Path
) -> None:
    c = new_container()
    hosts = two_services(c, tmp_path)
    first = pyinfra(hosts, "-y")
    assert first.returncode == 0, first.output[-3000:]
    good = c.ssh(f"git -C {REPO} rev-parse HEAD").stdout.strip()
    # Breaks only pipelines, with a dependency change (the sync installs six), while the
    # backend's new release comes up healthy first.
    bad = app_site.publish_app(
        "pipelines broken, six added",
        {
            **app_site.with_dependency("pipelines", "six==1.16.0"),
            **app_site.crash_at_import("pipelines"),
            "egograph/backend/__init__.py": 'RELEASE = "2"\n',
        },
    )

    failed = pyinfra(hosts, "-y", deploy="deploys/update.py")

    assert failed.returncode != 0
    assert "egograph-pipelines.service is crash-looping" in failed.output, failed.output[-3000:]
    assert "this release cannot start" in failed.output  # its journal lines
    assert f"ROLLED BACK: release {bad} failed (egograph-pipelines)" in failed.output
    assert c.ssh(f"git -C {REPO} rev-parse HEAD").stdout.strip() == good
    for unit in UNITS:
        assert answering(c, unit)["release"] == "1"
        assert stamp_commit(c, unit) == good
    # The environment is the checkout's again: what the new release installed is gone.
    check = c.ssh(
        f"cd {REPO} && UV_PYTHON_DOWNLOADS=never /root/.local/bin/uv sync --all-packages "
        "--locked --check",
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert c.ssh(f"{REPO}/.venv/bin/python -c 'import six'", check=False).returncode != 0
    marker = json.loads(c.ssh("cat /var/lib/egograph-deploy/release.rolled-back.json").stdout)
    assert (marker["failed_commit"], marker["failed_service"]) == (bad, "egograph-pipelines")

    # Not deployed again: the rerun stops before changing anything, naming the release.
    # (Its only host failed, so pyinfra prints no JSON: 0 changes is read from its lines,
    # one "Success" per operation that ran a command, and from the target itself.)
    pids = {u: c.ssh(f"systemctl show -p MainPID --value {u}").stdout for u in UNITS}
    again = pyinfra(hosts, "-y")
    assert again.returncode != 0
    assert f"release {bad} was rolled back at {marker['at']}: not deploying it again" in (
        again.output
    )
    plain = re.sub(r"\x1b\[[0-9;]*m", "", again.output)
    assert [ln for ln in plain.splitlines() if re.search(r"\] Success", ln)] == []
    assert c.ssh(f"git -C {REPO} rev-parse HEAD").stdout.strip() == good
    for unit in UNITS:
        assert c.ssh(f"systemctl show -p MainPID --value {unit}").stdout == pids[unit]
        assert answering(c, unit)["release"] == "1"

    app_site.publish_app("pipelines fixed")  # the fixture: a new commit
    fixed = pyinfra(hosts, "-y")
    assert fixed.returncode == 0, fixed.output[-3000:]
    assert c.ssh("ls /var/lib/egograph-deploy/").stdout.count("rolled-back") == 0
    last = pyinfra(hosts, "-y", "--json")
    assert last.returncode == 0, last.output[-3000:]
    assert last.totals()["success"] == 0, last.changed_ops()


def test_a_new_service_that_never_came_up_is_stopped_and_disabled(
    new_container: Any, tmp_path: Path
) -> None:
    c = new_container()
    backend_only = two_services(c, tmp_path)
    data = json.loads(backend_only.read_text())["hosts"][0]["data"]
    pipelines = data["services"][1]
    data["services"] = data["services"][:1]
    hosts = site.write_hosts_file(tmp_path / "backend.json", [(c.name, data)])
    assert pyinfra(hosts, "-y").returncode == 0
    backend_pid = c.ssh("systemctl show -p MainPID --value egograph-backend").stdout.strip()
    # A second service whose app cannot be loaded (no such factory): it never comes up.
    data["services"] = [data["services"][0], {**pipelines, "module": "pipelines.app:missing"}]
    hosts = site.write_hosts_file(tmp_path / "broken.json", [(c.name, data)])

    failed = pyinfra(hosts, "-y")

    assert failed.returncode != 0
    assert "egograph-pipelines never became healthy: stopped and disabled" in failed.output
    assert 'Attribute "missing" not found in module "pipelines.app"' in failed.output  # journal
    state = c.ssh(
        "systemctl is-enabled egograph-pipelines; systemctl is-active egograph-pipelines",
        check=False,
    ).stdout.split()
    assert state == ["disabled", "inactive"], state
    # Its unit and env file stay for inspection; the backend was never touched.
    c.ssh("test -f /etc/systemd/system/egograph-pipelines.service")
    c.ssh(f"test -f {REPO}/egograph/pipelines/.env")
    assert c.ssh("systemctl show -p MainPID --value egograph-backend").stdout.strip() == (
        backend_pid
    )

    data["services"][1] = pipelines
    hosts = site.write_hosts_file(tmp_path / "fixed.json", [(c.name, data)])
    assert pyinfra(hosts, "-y").returncode == 0
    assert answering(c, "egograph-pipelines")["status"] == "ok"
    last = pyinfra(hosts, "-y", "--json")
    assert last.totals()["success"] == 0, last.changed_ops()
