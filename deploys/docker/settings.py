"""The Docker-on-a-VM variant's settings (runbook §8), and the rules across them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..common.checks import (
    HTTP_URL,
    IMAGE_NAME,
    IMAGE_REF,
    int_range,
    is_abs_path,
    matches,
    one_of,
    optional,
)
from ..common.setting import setting


@dataclass(frozen=True)
class DockerSettings:
    """The Docker-on-a-VM variant (runbook §8): ``deploys/docker_vm.py`` runs the app as a container instead of the LXC deploy."""

    docker_install_method: str = setting(
        "distro",
        form="'distro' or 'docker-repo'",
        doc="distro: the distribution's `docker.io` package. docker-repo: Docker's own apt "
        "repository (docker_repo_url, keyring pinned by docker_repo_keyring_sha256)",
        check=one_of("distro", "docker-repo"),
    )
    docker_repo_url: str = setting(
        "https://download.docker.com/linux/debian",
        form="an http(s) URL",
        doc="Docker's apt repository for the target's distribution (docker-repo only); its "
        "keyring is `<url>/gpg`",
        check=matches(HTTP_URL),
    )
    docker_repo_keyring_sha256: str = setting(
        "",
        form="'' or 64 hex digits",
        doc="Pinned SHA-256 of `<docker_repo_url>/gpg`; required with docker-repo (a download "
        "that differs is refused)",
        check=optional(re.compile(r"^[0-9a-fA-F]{64}$")),
    )
    docker_base_image: str = setting(
        "python:3.12-slim",
        form="an image reference, e.g. 'python:3.12-slim'",
        doc="Passed to the build as `--build-arg BASE_IMAGE=…`: point it at a mirror or a local "
        "image. It must provide python3, and uv or pip",
        check=matches(IMAGE_REF),
    )
    docker_image_name: str = setting(
        "egograph-backend",
        form="an image name (lowercase, no tag)",
        doc="Name of the built image (tagged with the commit) and of the container",
        check=matches(IMAGE_NAME),
    )
    docker_dockerfile: str = setting(
        "Dockerfile",
        form="a path relative to repo_path",
        doc="The Dockerfile; the build context is always the whole repository (uv workspace)",
        check=lambda v: (
            isinstance(v, str) and bool(v) and not v.startswith("/") and is_abs_path("/" + v)
        ),
    )
    docker_host_port: int = setting(
        8000,
        form="an integer from 1 to 65535",
        doc="Port published on the host, on 127.0.0.1 only (Tailscale serve is the way in)",
        check=int_range(1, 65535),
    )
    docker_container_port: int = setting(
        8000,
        form="an integer from 1 to 65535",
        doc="Port uvicorn listens on inside the container (the Dockerfile's, runbook §8: 8000)",
        check=int_range(1, 65535),
    )
    docker_env_file: str = setting(
        "/etc/egograph/backend.env",
        form="an absolute path outside repo_path",
        doc="The container's `--env-file` on the host (0600, root), written from the first "
        "service's env_source; outside the checkout so it never enters the build context",
        check=is_abs_path,
    )
    docker_restart_policy: str = setting(
        "unless-stopped",
        form="'no', 'always', 'unless-stopped' or 'on-failure'",
        doc="`docker run --restart`",
        check=one_of("no", "always", "unless-stopped", "on-failure"),
    )


def docker_errors(data: Mapping[str, Any]) -> list[str]:
    """Checks across Docker settings (each one's own form is checked already)."""
    errors: list[str] = []
    if data.get("docker_install_method") == "docker-repo" and not data.get(
        "docker_repo_keyring_sha256"
    ):
        errors.append(
            "docker_repo_keyring_sha256: got ''; expected the SHA-256 of "
            "<docker_repo_url>/gpg with docker_install_method = 'docker-repo' (download it, "
            "verify its fingerprint, then pin `sha256sum` of it)"
        )
    env_file, repo = data.get("docker_env_file"), data.get("repo_path")
    inside = (
        isinstance(env_file, str)
        and isinstance(repo, str)
        and bool(repo)
        and (env_file + "/").startswith(repo.rstrip("/") + "/")
    )
    if inside:
        errors.append(
            f"docker_env_file: got {env_file!r}; expected a path outside repo_path "
            "(the whole checkout is the build context)"
        )
    return errors
