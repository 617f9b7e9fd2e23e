"""The Docker variant's fact, operations and release script, against a fake host (no
target): each branch's decision and the commands it yields."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api import StringCommand

from deploys.docker import env_text
from deploys.docker import operations as ops
from deploys.docker.facts import BUILD_LABEL, RUN_LABEL, DockerRepository, DockerState
from deploys.docker.release import release_script
from deploys.docker.settings import docker_errors
from deploys.settings import Settings
from tests.unit.fakes import FakeHost, run_op

SHA = "5d1c" + "0" * 36
OTHER = "9e0b" + "0" * 36


def run(op: Any, facts: dict[type, Any], **kwargs: Any) -> FakeHost:
    fake = run_op(op, facts, **kwargs)
    fake.commands = [
        c.get_raw_value() if isinstance(c, StringCommand) else repr(c) for c in fake.commands
    ]
    return fake


@pytest.fixture(autouse=True)
def _no_reasons_file(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("EGOGRAPH_REASONS_FILE", raising=False)
    yield


def state(**changes: Any) -> dict[str, Any]:
    return {**DockerState.default(), "installed": True, "active": True, "enabled": True, **changes}


# -- fact ----------------------------------------------------------------------------------
def test_fact_parses_engine_images_and_container() -> None:
    got = DockerState().process(
        [
            "active active",
            "enabled enabled",
            f"image egograph-backend:{SHA} sha256:ab",
            f'labels egograph-backend:{SHA} {{"org.egograph.build":"b1"}}',
            f'container "running" "egograph-backend:{SHA}" {{"org.egograph.run":"r1"}}',
        ]
    )
    assert got == {
        "installed": True,
        "active": True,
        "enabled": True,
        "images": {f"egograph-backend:{SHA}": "sha256:ab"},
        "image_labels": {f"egograph-backend:{SHA}": {"org.egograph.build": "b1"}},
        "container": {
            "state": "running",
            "image": f"egograph-backend:{SHA}",
            "labels": {"org.egograph.run": "r1"},
        },
    }


def test_fact_without_docker_is_the_default() -> None:
    assert DockerState().process(["missing"]) == DockerState.default()


def test_fact_with_nothing_built_yet() -> None:
    got = DockerState().process(["active inactive", "enabled disabled", "container "])
    assert got["installed"] and not got["active"] and not got["enabled"]
    assert got["container"] is None and got["images"] == {}


# -- engine --------------------------------------------------------------------------------
def test_engine_noop_when_running_and_enabled() -> None:
    fake = run(ops.docker_engine, {DockerState: state()})
    assert fake.commands == [] and fake.noops == ["docker.service is running and enabled"]


def test_engine_started_and_enabled() -> None:
    fake = run(ops.docker_engine, {DockerState: state(active=False, enabled=False)})
    assert fake.commands == ["systemctl start docker.service", "systemctl enable docker.service"]


# -- image ---------------------------------------------------------------------------------
IMAGE_ARGS = {
    "repo_path": "/opt/egograph/repo",
    "image": "egograph-backend",
    "dockerfile": "Dockerfile",
    "base_image": "python:3.12-slim",
}


def test_image_noop_when_the_commit_is_built_the_same_way() -> None:
    digest = ops.build_digest("Dockerfile", "python:3.12-slim")
    built = state(
        images={f"egograph-backend:{SHA}": "sha256:ab"},
        image_labels={f"egograph-backend:{SHA}": {BUILD_LABEL: digest}},
    )
    fake = run(ops.docker_image, {DockerState: built}, commit=SHA, **IMAGE_ARGS)
    assert fake.commands == [] and fake.noops == [f"image egograph-backend:{SHA} is built"]


def test_image_built_for_a_new_commit_with_the_base_image_argument() -> None:
    fake = run(ops.docker_image, {DockerState: state()}, commit=SHA, **IMAGE_ARGS)
    (cmd,) = fake.commands
    assert "docker build --quiet -f /opt/egograph/repo/Dockerfile" in cmd
    assert "--build-arg BASE_IMAGE=python:3.12-slim" in cmd
    assert '-t egograph-backend:"$commit" /opt/egograph/repo' in cmd
    assert fake.logs == [f"no image egograph-backend:{SHA}"]


def test_image_rebuilt_when_the_base_image_changed() -> None:
    digest = ops.build_digest("Dockerfile", "python:3.12-slim")
    built = state(
        images={f"egograph-backend:{SHA}": "sha256:ab"},
        image_labels={f"egograph-backend:{SHA}": {BUILD_LABEL: digest}},
    )
    args = {**IMAGE_ARGS, "base_image": "mirror.example/python:3.12-slim"}
    fake = run(ops.docker_image, {DockerState: built}, commit=SHA, **args)
    assert len(fake.commands) == 1
    assert "another Dockerfile or base image" in fake.logs[0]


# -- container -----------------------------------------------------------------------------
CONTAINER_ARGS = {
    "container_name": "egograph-backend",
    "image": "egograph-backend",
    "repo_path": "/opt/egograph/repo",
    "env_file": "/etc/egograph/backend.env",
    "env_sha256": "e" * 64,
    "restart": "unless-stopped",
    "host_port": 8000,
    "container_port": 8000,
    "health_url": "http://127.0.0.1:8000/health",
}


def running(image: str = f"egograph-backend:{SHA}", **labels: str) -> dict[str, Any]:
    digest = ops.run_digest("e" * 64, {"restart": "unless-stopped", "ports": "127.0.0.1:8000:8000"})
    return state(
        container={"state": "running", "image": image, "labels": {RUN_LABEL: digest, **labels}}
    )


def test_container_noop_when_image_env_and_options_match() -> None:
    fake = run(ops.docker_container, {DockerState: running()}, commit=SHA, **CONTAINER_ARGS)
    assert fake.commands == []
    assert fake.noops == [f"container egograph-backend runs egograph-backend:{SHA}"]


@pytest.mark.parametrize(
    ("facts", "changes", "reason"),
    [
        (state(), {}, "no container egograph-backend"),
        (running(f"egograph-backend:{OTHER}"), {}, f"runs egograph-backend:{OTHER}"),
        (running(), {"env_sha256": "f" * 64}, "env file or run options changed"),
        (running(), {"host_port": 8001}, "env file or run options changed"),
        (running(), {"restart": "always"}, "env file or run options changed"),
    ],
)
def test_container_recreated_when_something_changed(
    facts: dict[str, Any], changes: dict[str, Any], reason: str
) -> None:
    fake = run(
        ops.docker_container, {DockerState: facts}, commit=SHA, **{**CONTAINER_ARGS, **changes}
    )
    (cmd,) = fake.commands
    assert cmd.startswith("sh -c ")
    assert reason in fake.logs[0]


def test_run_options_publish_on_loopback_only() -> None:
    args = ops.run_args(
        env_file="/etc/e.env",
        restart="unless-stopped",
        host_port=8000,
        container_port=8000,
        run_digest="d",
    )
    assert args[args.index("-p") + 1] == "127.0.0.1:8000:8000"
    assert args[args.index("--env-file") + 1] == "/etc/e.env"


def test_release_script_is_valid_shell_and_rolls_back() -> None:
    script = release_script(
        name="egograph-backend",
        image="egograph-backend",
        repo_path="/opt/egograph/repo",
        run_args=["--restart", "unless-stopped", "-p", "127.0.0.1:8000:8000"],
        health_url="http://127.0.0.1:8000/health",
        health_timeout=60,
    )
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    assert "docker rename egograph-backend egograph-backend-previous" in script
    assert "ROLLED BACK" in script and "exit 1" in script


# -- repository ----------------------------------------------------------------------------
def test_docker_repository_noop_when_keyring_and_source_match() -> None:
    from deploys.common.operations import sha256_text

    line = ops.source_line("https://download.docker.com/linux/debian", "bookworm")
    facts = {
        DockerRepository: {
            "codename": "bookworm",
            "keyring": "ab" * 32,
            "source": sha256_text(line + "\n"),
        },
    }
    fake = run(
        ops.docker_repository,
        facts,
        repo_url="https://download.docker.com/linux/debian",
        keyring_sha256="AB" * 32,
    )
    assert fake.commands == []


# -- env file ------------------------------------------------------------------------------
def test_env_text_keeps_values_raw_for_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREETING", 'hello "world"')
    svc = dataclasses.replace(
        Settings().services[0], env_source={"environ": {"EGOGRAPH_GREETING": "GREETING"}}
    )
    assert env_text(svc) == 'EGOGRAPH_GREETING=hello "world"\n'


# -- settings ------------------------------------------------------------------------------
def test_docker_repo_needs_a_keyring_pin_and_the_env_file_stays_out_of_the_checkout() -> None:
    errors = docker_errors(
        {
            "docker_install_method": "docker-repo",
            "docker_repo_keyring_sha256": "",
            "docker_env_file": "/opt/egograph/repo/backend.env",
            "repo_path": "/opt/egograph/repo",
        }
    )
    assert [e.split(":")[0] for e in errors] == ["docker_repo_keyring_sha256", "docker_env_file"]
    assert (
        docker_errors(
            {
                "docker_install_method": "distro",
                "docker_repo_keyring_sha256": "",
                "docker_env_file": "/etc/egograph/backend.env",
                "repo_path": "/opt/egograph/repo",
            }
        )
        == []
    )


def test_repository_fact_in_a_real_shell(tmp_path: Path) -> None:
    """The command, run by sh here against files of this machine's shape: the host's own
    /etc/os-release names its codename; a missing file has no digest."""
    keyring = tmp_path / "docker.asc"
    keyring.write_bytes(b"key")
    cmd = DockerRepository().command(str(keyring), str(tmp_path / "absent.list"))
    out = subprocess.run(
        ["sh", "-c", cmd.get_raw_value()], capture_output=True, text=True, check=True
    ).stdout
    got = DockerRepository().process(out.splitlines())
    assert got["keyring"] == hashlib.sha256(b"key").hexdigest() and got["source"] is None
    assert got["codename"]  # this Debian's
