"""The Docker variant (runbook §8) on a VM stand-in: converge → idempotence → a new commit
rebuilds and recreates once → a broken release rolls back to the previous image.

The VM is a sandbox container that can run a Docker engine (tests/sandbox/container.py
``docker=True``); its base image is made locally (tests/sandbox/docker/site.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import site
from tests.sandbox.app import site as app_site
from tests.sandbox.container import Container
from tests.sandbox.docker import site as docker_site
from tests.sandbox.runner import drift, pyinfra

pytestmark = pytest.mark.e2e

DEPLOY = "deploys/docker_vm.py"
BUILD = "Docker image | Image egograph-backend built from the checkout"
RUN = "Docker container | Container egograph-backend running the current image, healthy"
CHECKOUT = "App repository | Check out main at /opt/egograph/repo"


def hosts_file(tmp_path: Path, c: Container, env: Path) -> Path:
    data = {
        **c.pyinfra_data(),
        **site.settings(env),
        "docker_base_image": docker_site.BASE_IMAGE,
        "docker_host_port": 8080,
    }
    return site.write_hosts_file(tmp_path / "hosts.json", [(c.name, data)])


def health(c: Container) -> dict[str, Any]:
    return dict(json.loads(c.ssh("curl -fsS http://127.0.0.1:8080/health").stdout))


def running_image(c: Container) -> str:
    return c.ssh(
        "docker container inspect --format '{{.Config.Image}}' egograph-backend"
    ).stdout.strip()


def test_docker_deploy_builds_runs_rebuilds_and_rolls_back(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container(docker=True)
    docker_site.prepare_vm(c)
    hosts = hosts_file(tmp_path, c, secret_env)
    first_commit = app_site.app_head()

    first = pyinfra(hosts, "-y", "--json", deploy=DEPLOY)
    assert first.returncode == 0, first.output[-4000:]
    assert {BUILD, RUN} <= set(first.changed_ops())
    assert "Docker engine | docker.service running and enabled" in first.changed_ops()
    answer = health(c)
    assert answer["status"] == "ok" and answer["cors_origins"] == "http://localhost:5173"
    assert running_image(c) == f"egograph-backend:{first_commit}"

    # --- independent checks: loopback only, env file private, engine enabled ---
    listen = c.ssh("ss -Htln 'sport = :8080'").stdout.split()
    assert "127.0.0.1:8080" in listen and "0.0.0.0:8080" not in listen, listen
    assert c.ssh(f"curl -fsS -m 3 http://{c.ip}:8080/health", check=False).returncode != 0
    assert c.ssh("stat -c '%a %U' /etc/egograph/backend.env").stdout.split() == ["600", "root"]
    assert c.ssh("systemctl is-enabled docker").stdout.strip() == "enabled"
    assert app_site.CANARY not in first.output

    second = pyinfra(hosts, "-y", "--json", deploy=DEPLOY)
    assert second.returncode == 0, second.output[-4000:]
    assert second.totals()["success"] == 0, second.changed_ops()

    code, report, output = drift(hosts, deploy=DEPLOY)
    assert code == 0, report
    assert app_site.CANARY not in output

    # --- a new commit: checkout, one build, one recreate (predicted by the drift check) ---
    new = app_site.publish_app("release 2", {"egograph/backend/__init__.py": 'RELEASE = "2"\n'})
    code, report, _ = drift(hosts, deploy=DEPLOY)
    assert code == 2, report
    changes = {ch["operation"]: ch["reasons"] for ch in report["hosts"][c.name]}
    assert set(changes) == {CHECKOUT, BUILD, RUN}, changes
    assert any(f"no image egograph-backend:{new}" in r for r in changes[BUILD])
    released = pyinfra(hosts, "-y", "--json", deploy=DEPLOY)
    assert released.returncode == 0, released.output[-4000:]
    assert sorted(released.changed_ops()) == sorted([CHECKOUT, BUILD, RUN])
    assert health(c)["release"] == "2"
    assert running_image(c) == f"egograph-backend:{new}"

    # --- a broken release: the previous container comes back, the run fails clearly ---
    app_site.publish_app(
        "broken release",
        {"egograph/backend/__init__.py": 'raise RuntimeError("broken release")\n'},
    )
    broken = pyinfra(hosts, "-y", "--json", deploy=DEPLOY)
    assert broken.returncode != 0
    assert "ROLLED BACK" in broken.output, broken.output[-4000:]
    assert health(c)["release"] == "2"
    assert running_image(c) == f"egograph-backend:{new}"
    images = c.ssh("docker image ls --format '{{.Tag}}' egograph-backend").stdout.split()
    assert new in images
