"""The Docker variant on a VM (runbook §8), in the runbook's order: §2 packages and
Tailscale, §8 engine, §3 checkout and env file, §8 build and run, §2/§9 ``tailscale serve``
on the VM host. The entry file is ``deploys/docker_vm.py``."""

from __future__ import annotations

from . import audit, docker, packages, repo, runlock, tailscale
from .common.snapshot import planned
from .hostsettings import current


@planned
def converge() -> None:
    settings = current()
    runlock.hold_run_lock(settings=settings, entry="deploys/docker_vm.py")
    audit.record_run(settings=settings, entry="deploys/docker_vm.py")
    repo.check_remote(settings=settings)  # before anything changes (as the LXC deploy)
    packages.install_packages(settings=settings)
    tailscale.join_tailnet(settings=settings)
    docker.install_engine(settings=settings)
    # One commit for the whole run (as the LXC deploy).
    commit = repo.run_commit(settings)
    repo.checkout_repo(settings=settings, commit=commit)
    docker.write_env_file(settings=settings)
    docker.build_image(settings=settings, commit=commit)
    docker.run_container(settings=settings, commit=commit)
    tailscale.publish_services(
        targets=docker.published(settings),
        hostname=tailscale.node_name(settings),
        settings=settings,
    )
