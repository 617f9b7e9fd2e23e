"""Operations for the Docker variant: engine, image, container (runbook §8)."""

from __future__ import annotations

import json
from typing import Any

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand

from ..common.operations import sha256_text
from ..common.report import change_reason, refuse
from ..common.shell import download_pinned, write_line
from ..common.snapshot import fact_read, operation
from ..repo.commit import Commit, commit_of
from .facts import BUILD_LABEL, COMMIT_LABEL, RUN_LABEL, DockerRepository, DockerState
from .release import release_script

KEYRING_PATH = "/etc/apt/keyrings/docker.asc"
SOURCE_PATH = "/etc/apt/sources.list.d/docker.list"


def source_line(repo_url: str, codename: str) -> str:
    return f"deb [signed-by={KEYRING_PATH}] {repo_url} {codename} stable"


def build_digest(dockerfile: str, base_image: str) -> str:
    """What shapes an image besides the commit (its tag)."""
    return sha256_text(json.dumps({"dockerfile": dockerfile, "base_image": base_image}))


def run_args(
    *, env_file: str, restart: str, host_port: int, container_port: int, run_digest: str
) -> list[str]:
    """``docker run`` options; published on 127.0.0.1 only (the runbook's ``-p 8000:8000``
    would listen on every interface: Tailscale serve is the only way in)."""
    return [
        "--label",
        f"{RUN_LABEL}={run_digest}",
        "--env-file",
        env_file,
        "--restart",
        restart,
        "-p",
        f"127.0.0.1:{host_port}:{container_port}",
    ]


def run_digest(env_text_sha256: str, options: dict[str, Any]) -> str:
    return sha256_text(json.dumps({"env": env_text_sha256, "options": options}, sort_keys=True))


@operation(read=lambda **_: fact_read(DockerRepository, keyring=KEYRING_PATH, source=SOURCE_PATH))
def docker_repository(
    current: dict[str, Any], repo_url: str, keyring_sha256: str, *, lock_timeout: int = 300
) -> Any:
    """
    Docker's own apt repository, its keyring pinned by SHA-256 (``docker_install_method``
    'docker-repo').

    + repo_url: e.g. https://download.docker.com/linux/debian (keyring at ``<url>/gpg``)
    + keyring_sha256: the pin; a downloaded keyring that differs is refused
    + lock_timeout: seconds to wait for the apt lock

    **Example:**

    .. code:: python

        docker_repository(name="Docker apt repository",
                          repo_url="https://download.docker.com/linux/debian",
                          keyring_sha256="1500c1f5…")
    """
    codename = current["codename"]
    if not codename:
        yield from refuse("cannot tell the distribution's codename for Docker's apt repository")
        return
    line = source_line(repo_url, codename)
    keyring, source = current["keyring"], current["source"]
    commands: list[StringCommand] = []
    if not keyring or keyring != keyring_sha256.lower():
        change_reason(f"{KEYRING_PATH} {'differs from the pin' if keyring else 'is missing'}")
        commands.append(
            download_pinned(
                f"{repo_url}/gpg",
                KEYRING_PATH,
                keyring_sha256.lower(),
                setting="docker_repo_keyring_sha256",
                rotated="If Docker rotated its key, verify the new one and update the pin.",
            )
        )
    if not source or source != sha256_text(line + "\n"):
        change_reason(f"{SOURCE_PATH} {'differs' if source else 'is missing'}")
        commands.append(write_line(SOURCE_PATH, line))
    if not commands:
        host.noop(f"Docker's repository {repo_url} is configured")
        return
    yield from commands
    yield StringCommand(
        "apt-get", "-o", f"DPkg::Lock::Timeout={int(lock_timeout)}", "update", "-qq"
    )


@operation(read=lambda **_: fact_read(DockerState, image="none", container="none"))
def docker_engine(
    state: dict[str, Any], *, running: bool = True, enabled: bool = True, lock_timeout: int = 300
) -> Any:
    """
    The ``docker`` CLI present, ``docker.service`` running and enabled at boot.

    Debian 13's ``docker.io`` only recommends the CLI (package ``docker-cli``), which a
    ``--no-install-recommends`` install leaves out; older releases ship it in ``docker.io``.
    So the CLI is installed from ``docker-cli`` only when it is still missing then.

    + running: started now
    + enabled: started at boot
    + lock_timeout: seconds to wait for the apt lock

    **Example:**

    .. code:: python

        docker_engine(name="Docker engine running and enabled")
    """
    commands: list[StringCommand] = []
    if not state["installed"]:
        change_reason("no docker CLI")
        commands.append(
            StringCommand(
                "command -v docker >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get",
                "-o",
                f"DPkg::Lock::Timeout={int(lock_timeout)}",
                "install -y -qq --no-install-recommends docker-cli",
            )
        )
    if running and not state["active"]:
        change_reason("docker.service is not running")
        commands.append(StringCommand("systemctl", "start", "docker.service"))
    if enabled and not state["enabled"]:
        change_reason("docker.service is not enabled")
        commands.append(StringCommand("systemctl", "enable", "docker.service"))
    if not commands:
        host.noop("docker.service is running and enabled")
    yield from commands


@operation(read=lambda image, **_: fact_read(DockerState, image=image, container="none"))
def docker_image(
    state: dict[str, Any],
    repo_path: str,
    image: str,
    dockerfile: str,
    base_image: str,
    *,
    commit: Commit = None,
) -> Any:
    """
    Build the app's image from the checkout, tagged with its commit; only when no image of
    that commit exists, or it was built from another Dockerfile path or base image. Earlier
    images are kept (the container operation prunes all but the current and previous one).

    + repo_path: the checkout; the whole workspace is the build context
    + image: image name, tagged ``<image>:<commit>``
    + dockerfile: path relative to ``repo_path``
    + base_image: passed as ``--build-arg BASE_IMAGE=…``
    + commit: the commit the run moves to (None: not known before the checkout; built)

    **Example:**

    .. code:: python

        docker_image(name="Image egograph-backend", repo_path="/opt/egograph/repo",
                     image="egograph-backend", dockerfile="Dockerfile",
                     base_image="python:3.12-slim", commit="5d1c…")
    """
    digest = build_digest(dockerfile, base_image)
    commit = commit_of(commit)
    if commit is not None:
        ref = f"{image}:{commit}"
        labels = state["image_labels"].get(ref, {})
        if ref in state["images"] and labels.get(BUILD_LABEL) == digest:
            host.noop(f"image {ref} is built")
            return
        change_reason(
            f"image {ref} was built from another Dockerfile or base image"
            if ref in state["images"]
            else f"no image {ref}"
        )
    else:
        change_reason("the commit is not known before the checkout")
    p = QuoteString(repo_path)
    yield StringCommand(
        "commit=$(git -C",
        p,
        "rev-parse HEAD) && docker build --quiet -f",
        QuoteString(f"{repo_path}/{dockerfile}"),
        "--build-arg",
        QuoteString(f"BASE_IMAGE={base_image}"),
        "--label",
        QuoteString(f"{BUILD_LABEL}={digest}"),
        "--label",
        f'{COMMIT_LABEL}="$commit"',
        "-t",
        StringCommand(QuoteString(image), ':"$commit"', _separator=""),
        p,
        ">/dev/null",
    )


@operation(
    read=lambda container_name, image, **_: fact_read(
        DockerState, image=image, container=container_name
    )
)
def docker_container(
    state: dict[str, Any],
    container_name: str,
    image: str,
    repo_path: str,
    *,
    env_file: str,
    env_sha256: str,
    restart: str,
    host_port: int,
    container_port: int,
    health_url: str,
    health_timeout: int = 60,
    commit: Commit = None,
) -> Any:
    """
    Run the app's container from ``<image>:<commit>``; recreate it only when the image, the
    env file or the run options changed (the container carries a digest of the last two as
    a label). A new container that fails its health check is replaced by the previous one
    again, and the operation fails saying so.

    + container_name: the container's name
    + image: image name (tag: the checkout's commit)
    + repo_path: the checkout, whose commit names the image
    + env_file: ``--env-file`` on the host
    + env_sha256: digest of the env file's wanted content
    + restart: ``--restart`` policy
    + host_port: published on 127.0.0.1 only
    + container_port: where the app listens inside
    + health_url: polled on the host after the start
    + health_timeout: seconds to wait for a 200
    + commit: the commit the run moves to (None: not known yet; recreated)

    **Example:**

    .. code:: python

        docker_container(name="Container egograph-backend", container_name="egograph-backend",
                         image="egograph-backend", repo_path="/opt/egograph/repo",
                         env_file="/etc/egograph/backend.env", env_sha256="9f…",
                         restart="unless-stopped", host_port=8000, container_port=8000,
                         health_url="http://127.0.0.1:8000/health", commit="5d1c…")
    """
    options = {"restart": restart, "ports": f"127.0.0.1:{host_port}:{container_port}"}
    digest = run_digest(env_sha256, options)
    commit = commit_of(commit)
    if commit is not None:
        current = state["container"]
        ref = f"{image}:{commit}"
        if current is None:
            change_reason(f"no container {container_name}")
        elif current["image"] != ref:
            change_reason(f"container {container_name} runs {current['image']}, want {ref}")
        elif current["labels"].get(RUN_LABEL) != digest:
            change_reason(f"container {container_name}: env file or run options changed")
        elif current["state"] != "running":
            change_reason(f"container {container_name} is {current['state']}")
        else:
            host.noop(f"container {container_name} runs {ref}")
            return
    else:
        change_reason("the commit is not known before the checkout")
    yield StringCommand(
        "sh",
        "-c",
        QuoteString(
            release_script(
                name=container_name,
                image=image,
                repo_path=repo_path,
                run_args=run_args(
                    env_file=env_file,
                    restart=restart,
                    host_port=host_port,
                    container_port=container_port,
                    run_digest=digest,
                ),
                health_url=health_url,
                health_timeout=health_timeout,
            )
        ),
    )
