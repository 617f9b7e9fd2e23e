"""The app as a Docker container on a VM (runbook §8): engine, checkout, image, container,
`tailscale serve` on the VM host."""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

from pyinfra.api import HiddenValue, deploy

from ..common.operations import managed_file, sha256_text
from ..packages.operations import apt_packages
from ..repo.commit import Commit
from ..services.envsource import environ_mapping
from ..services.settings import Service
from ..tailscale import served_services
from ..tailscale.plan import Published

if TYPE_CHECKING:
    from ..settings import Settings
from .operations import docker_container, docker_engine, docker_image, docker_repository

DOCKER_REPO_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin")


def env_text(svc: Service) -> str:
    """The ``--env-file`` text. A file source is taken as it is (read once, while
    validating); values from environment variables are written raw, because ``docker run
    --env-file`` keeps quotes literally (unlike systemd's EnvironmentFile=) and cannot hold
    a newline."""
    if "file" in svc.env_source:
        if svc.env is None:
            raise ValueError(f"services[0] ({svc.name}): its env file was not read")
        return svc.env.text
    lines = []
    for key, var in environ_mapping(svc.env_source).items():
        value = os.environ[var]
        if "\n" in value:
            raise ValueError(f"{var}: a value with a newline cannot go in a Docker env file")
        lines.append(f"{key}={value}\n")
    return "".join(lines)


def published(settings: Settings) -> list[Published]:
    """What ``tailscale serve`` publishes on the VM host: the first service (the one the
    container runs), reached where the container is published on the host."""
    first = dataclasses.replace(
        settings.services[0], host="127.0.0.1", port=settings.docker_host_port
    )
    return served_services([first])


def health_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.docker_host_port}{settings.services[0].health_path}"


@deploy("Docker engine")
def install_engine(settings: Settings) -> None:
    if settings.docker_install_method == "docker-repo":
        docker_repository(
            name=f"Docker's apt repository {settings.docker_repo_url}",
            repo_url=settings.docker_repo_url,
            keyring_sha256=settings.docker_repo_keyring_sha256,
            lock_timeout=settings.apt_lock_timeout,
        )
        packages = list(DOCKER_REPO_PACKAGES)
    else:
        packages = ["docker.io"]
    apt_packages(
        name=f"Install {', '.join(packages)}",
        packages=packages,
        cache_time=settings.apt_cache_time,
        lock_timeout=settings.apt_lock_timeout,
    )
    docker_engine(name="docker.service running and enabled", lock_timeout=settings.apt_lock_timeout)


@deploy("Docker env file")
def write_env_file(settings: Settings) -> None:
    managed_file(
        name=f"Env file for the container ({settings.docker_env_file}, 0600)",
        path=settings.docker_env_file,
        content=HiddenValue(env_text(settings.services[0])),
        mode=0o600,
        create_parent=True,
    )


@deploy("Docker image")
def build_image(settings: Settings, commit: Commit) -> None:
    docker_image(
        name=f"Image {settings.docker_image_name} built from the checkout",
        repo_path=settings.repo_path,
        image=settings.docker_image_name,
        dockerfile=settings.docker_dockerfile,
        base_image=settings.docker_base_image,
        commit=commit,
    )


@deploy("Docker container")
def run_container(settings: Settings, commit: Commit) -> None:
    docker_container(
        name=f"Container {settings.docker_image_name} running the current image, healthy",
        container_name=settings.docker_image_name,
        image=settings.docker_image_name,
        repo_path=settings.repo_path,
        env_file=settings.docker_env_file,
        env_sha256=sha256_text(env_text(settings.services[0])),
        restart=settings.docker_restart_policy,
        host_port=settings.docker_host_port,
        container_port=settings.docker_container_port,
        health_url=health_url(settings),
        health_timeout=settings.service_health_timeout,
        commit=commit,
    )
