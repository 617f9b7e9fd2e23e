"""The in-container deploy, in the runbook's order (§2 packages, Tailscale and uv, §3
checkout and env files, §4 `uv sync` and DuckDB httpfs, §5 systemd, §2/§9 `tailscale serve`)."""

from __future__ import annotations

from . import audit, duckdb, packages, proxmox, repo, runlock, services, tailscale, uv
from .common.snapshot import planned
from .hostsettings import current


@planned
def converge() -> None:
    settings = current()
    # First: the state read that every later step decides from takes the run lock.
    runlock.hold_run_lock(settings=settings, entry="deploys/prod.py")
    audit.record_run(settings=settings, entry="deploys/prod.py")
    # First: a remote that cannot be read stops the run before anything changes.
    repo.check_remote(settings=settings)
    packages.install_packages(settings=settings)
    # Tailscale right after the packages (the runbook's order, and it needs curl): a
    # container that cannot run it (no TUN, unsupported distro, no key) stops the run
    # before the app is touched. Serving comes last: it publishes the running services.
    tailscale.join_tailnet(settings=settings)
    uv.install_uv(settings=settings)
    # One commit for the whole run, so the checkout, the sync and the restart agree and a
    # dry run can predict all three.
    commit = repo.run_commit(settings)
    services.guard_release(settings=settings, commit=commit)
    # With Proxmox, before the checkout moves: the container as it was, to go back to.
    proxmox.snapshot_before_release(settings=settings, commit=commit)
    repo.checkout_repo(settings=settings, commit=commit)
    services.write_env_files(settings=settings)
    uv.sync_environment(settings=settings, commit=commit)
    # The services' accounts first: DuckDB's extensions go into their HOMEs.
    services.create_accounts(settings=settings)
    duckdb.install_extensions(settings=settings)
    services.run_services(settings=settings, commit=commit)
    tailscale.publish_services(
        targets=tailscale.served_services(settings.services),
        hostname=tailscale.node_name(settings),
        settings=settings,
    )


@planned
def update() -> None:
    """The runbook's update flow (§7: fetch, move to the branch, ``uv sync``, restart), with
    its safety: local edits on the server stop the run unless discarding them is allowed,
    and the restart waits for ``/health``. Env files are kept current too, because the
    restart's stamp compares them with the controller's."""
    settings = current()
    runlock.hold_run_lock(settings=settings, entry="deploys/update.py")
    audit.record_run(settings=settings, entry="deploys/update.py")
    repo.check_remote(settings=settings)
    commit = repo.run_commit(settings)
    services.guard_release(settings=settings, commit=commit)
    # With Proxmox, before the checkout moves: the container as it was, to go back to.
    proxmox.snapshot_before_release(settings=settings, commit=commit)
    repo.checkout_repo(settings=settings, commit=commit)
    services.write_env_files(settings=settings)
    uv.sync_environment(settings=settings, commit=commit)
    services.create_accounts(settings=settings)
    duckdb.install_extensions(settings=settings)
    services.run_services(settings=settings, commit=commit)
