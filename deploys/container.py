"""The in-container deploy, in the runbook's order (§2 packages, Tailscale and uv, §3
checkout and env files, §4 `uv sync` and DuckDB httpfs, §5 systemd, §2/§9 `tailscale serve`)."""

from __future__ import annotations

import dataclasses
import os

from . import audit, duckdb, packages, proxmox, repo, runlock, services, tailscale, uv
from .common.envvars import ROLLBACK_BY_ENV, ROLLBACK_TO_ENV
from .common.snapshot import planned
from .hostsettings import current
from .runlock.holder import controller_name
from .services.release import ManualRollback


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


@planned
def rollback() -> None:
    """``egodeploy rollback``: the update flow pinned to the release before the current one
    (or the one ``--to`` names, ``EGOGRAPH_ROLLBACK_TO``), so the checkout, ``uv sync``,
    the restart, the health gate, the automatic rollback of a release that fails, the run
    lock and the audit entry are the update's own. Once healthy, the release marker names
    the commit it left: the update flow and the drift check then refuse that commit until
    a new one arrives (or ``rollback --to`` it)."""
    settings = current()
    plan = services.plan_rollback(settings, os.environ.get(ROLLBACK_TO_ENV) or None)
    target = plan.target or plan.head
    # The audit entry reads the checkout as the pinned checkout does (one read).
    pinned = dataclasses.replace(settings, repo_branch=target) if target else settings
    runlock.hold_run_lock(settings=pinned, entry="deploys/rollback.py")
    audit.record_run(settings=pinned, entry="deploys/rollback.py")
    # First after the lock: no target, or a checkout that moved since the plan, stops the
    # run while nothing has changed.
    services.check_rollback(settings=pinned, plan=plan)
    if target is None:
        return
    by = os.environ.get(ROLLBACK_BY_ENV) or controller_name()
    manual = (
        ManualRollback(refuse=plan.refuse, reason=f"manual rollback by {by}")
        if plan.refuse
        else None
    )
    services.guard_release(settings=pinned, commit=target, chosen=True)
    repo.checkout_repo(settings=pinned, commit=target)
    services.write_env_files(settings=pinned)
    uv.sync_environment(settings=pinned, commit=target)
    services.create_accounts(settings=pinned)
    duckdb.install_extensions(settings=pinned)
    services.run_services(settings=pinned, commit=target, manual=manual)
