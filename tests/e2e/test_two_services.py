"""Two services, as upstream runs them: the backend and the pipelines factory app, each its
own unit, env file and port, both published on the tailnet (runbook §5 "a second
long-running service"), deployed in one run against the real tailscaled and headscale."""

from __future__ import annotations

import json
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
        "Services | egograph-backend enabled, running the current release, healthy",
        "Services | egograph-pipelines enabled, running the current release, healthy",
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
