"""The app's services under systemd (runbook §3 env files, §5 units)."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

import jinja2
from pyinfra import host
from pyinfra.api import HiddenValue, deploy

from ..common.operations import kept_file, managed_file, sha256_text
from ..common.secrets import Secret
from ..repo.commit import Commit
from ..uv.operations import sync_command
from .facts import ServiceStates
from .history import RollbackPlan, rollback_plan
from .release import ManualRollback
from .settings import Service, hardened_home

if TYPE_CHECKING:
    from ..settings import Settings
from .operations import (
    ServiceProbe,
    ServiceRelease,
    daemon_reload,
    release,
    release_guard,
    rollback_target,
    system_user,
)

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FunctionLoader(
        lambda name: resources.files(__package__).joinpath("templates", name).read_text()
    ),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)


def render_unit(settings: Settings, svc: Service) -> str:
    factory = " --factory" if svc.factory else ""
    return _TEMPLATES.get_template("unit.service.j2").render(
        service=svc,
        uvicorn_args=f"{svc.module}{factory} --host {svc.host} --port {svc.port}",
        uv_path=settings.uv_path,
        path=f"{settings.uv_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        repo_path=settings.repo_path,
        environment=sorted(settings.uv_environment.items()),
        restart_sec=settings.service_restart_sec,
        hardening=settings.service_hardening,
        home=hardened_home(svc.user),
        cache=f"/var/cache/{svc.user}",
        data_dir=settings.data_dir,
    )


@deploy("Service accounts")
def create_accounts(settings: Settings) -> None:
    """Hardened services' system user, its HOME, and the app's data dir it owns; before
    the DuckDB step, which installs extensions into that HOME."""
    if not settings.service_hardening:
        return
    for user, group in host.loop(settings.service_accounts):
        system_user(
            name=f"System user {user}:{group}, HOME {hardened_home(user)}, owning "
            f"{settings.data_dir}",
            user=user,
            group=group,
            home=hardened_home(user),
            owned_dirs=[settings.data_dir],
        )


def env_of(svc: Service) -> Secret:
    """The env file text validation read from the service's source (env_files_managed)."""
    if svc.env is None:
        raise ValueError(f"{svc.name}: its env source was not read (env_files_managed is off)")
    return svc.env


@deploy("Env files")
def write_env_files(settings: Settings) -> None:
    for svc in host.loop(settings.services):
        if not settings.env_files_managed:
            kept_file(
                name=f"Env file for {svc.unit} kept on the server ({svc.env_file}, 0600)",
                path=svc.env_file,
                mode=0o600,
            )
            continue
        managed_file(
            name=f"Env file for {svc.unit} ({svc.env_file}, 0600)",
            path=svc.env_file,
            content=HiddenValue(env_of(svc).text),
            mode=0o600,
            create_parent=True,
        )


def service_probe(settings: Settings) -> ServiceProbe:
    """The one read of systemd's view, the health URLs, the env files and the release
    marker that the guard, the reload and the release decide from."""
    return ServiceProbe(
        units=tuple(svc.unit for svc in settings.services),
        health_urls=tuple(svc.health_url for svc in settings.services),
        env_files=tuple(svc.env_file for svc in settings.services),
        repo_path=settings.repo_path,
    )


@deploy("Services")
def guard_release(settings: Settings, commit: Commit, chosen: bool = False) -> None:
    """Before the checkout moves: a commit that was rolled back is not deployed again
    (``chosen``: unless the user named it, ``egodeploy rollback --to``)."""
    release_guard(
        name=f"{settings.repo_branch} is not a release that was rolled back",
        probe=service_probe(settings),
        commit=commit,
        retry=settings.service_retry_rolled_back or chosen,
        retry_why="named by egodeploy rollback --to" if chosen else "service_retry_rolled_back",
    )


_PLAN = "_egograph_rollback_plan"
"""Where a host keeps its rollback plan: on the pyinfra ``Host``, so the deploy's planning
walk and its real walk (see ``deploys.common.snapshot.planned``) agree, with one read."""


def plan_rollback(settings: Settings, to: str | None) -> RollbackPlan:
    """Where ``egodeploy rollback`` takes this host (``to``: its ``--to``), decided while
    the deploy is prepared — the checkout, the sync and the release are pinned to the
    target — from one read of the checkout's head, the release history and the marker.
    The first operation checks the plan again under the run lock (:func:`check_rollback`)."""
    plan = getattr(host, _PLAN, None)
    if not isinstance(plan, RollbackPlan):
        states = host.get_fact(ServiceStates, **service_probe(settings).read().kwargs)
        plan = rollback_plan(states["head"], states["releases"], states["rolled_back"], to)
        setattr(host, _PLAN, plan)
        if plan.error:
            host.log(f"rollback: {plan.error}")
        elif plan.moves:
            host.log(f"rollback: {str(plan.head)[:12]} -> {str(plan.target)[:12]}")
        else:
            host.log(f"rollback: {str(plan.target)[:12]} runs already: nothing to do")
    return plan


@deploy("Rollback")
def check_rollback(settings: Settings, plan: RollbackPlan) -> None:
    rollback_target(
        name="Roll back to the release before (or the one --to names)",
        probe=service_probe(settings),
        plan=plan,
    )


def wanted_units(settings: Settings) -> dict[str, str]:
    """Each service's unit file as the deploy renders it, by unit."""
    return {svc.unit: render_unit(settings, svc) for svc in settings.services}


def wanted_releases(settings: Settings, units: dict[str, str]) -> tuple[ServiceRelease, ...]:
    """Every service as the release starts it (``units``: :func:`wanted_units`)."""
    return tuple(
        ServiceRelease(
            unit=svc.unit,
            unit_file=svc.unit_file,
            env_file=svc.env_file,
            health_url=svc.health_url,
            unit_sha256=sha256_text(units[svc.unit]),
            # Kept on the server: restarts follow the file as it is there.
            env_sha256=env_of(svc).sha256 if settings.env_files_managed else None,
        )
        for svc in settings.services
    )


@deploy("Services")
def run_services(settings: Settings, commit: Commit, manual: ManualRollback | None = None) -> None:
    units = wanted_units(settings)
    for svc in host.loop(settings.services):
        managed_file(
            name=f"Unit {svc.unit_file}",
            path=svc.unit_file,
            content=units[svc.unit],
            mode=0o644,
        )
    probe = service_probe(settings)
    daemon_reload(
        name="Reload systemd when a unit changed",
        units={u: sha256_text(text) for u, text in units.items()},
        probe=probe,
    )
    release(
        name=f"{', '.join(units)} enabled, running the current release, healthy",
        services=wanted_releases(settings, units),
        probe=probe,
        health_timeout=settings.service_health_timeout,
        repo_path=settings.repo_path,
        ref=settings.repo_branch,
        resync=sync_command(settings.uv_path, settings.uv_environment),
        commit=commit,
        keep=settings.release_keep,
        manual=manual,
    )
