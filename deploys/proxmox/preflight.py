"""The privilege check before the Proxmox stage changes anything: what this run will do,
read from the same :class:`.view.ContainerView` the operations decide from, against the
API identity's own permissions (:mod:`.privileges` holds the pure rules)."""

from __future__ import annotations

import logging

from pyinfra import host
from pyinfra.api import OperationError

from . import tun
from .access import ProxmoxError
from .errors import PveError, PvePermissionError
from .privileges import PrivilegeReport, StagePlan, evaluate, required_privileges, undecided_paths
from .spec import ContainerSpec, config_changes, create_params, is_unprivileged
from .view import ContainerView

logger = logging.getLogger("pyinfra")


def stage_plan(
    ct: ContainerView,
    spec: ContainerSpec,
    *,
    tun_method: str,
    apparmor: bool,
    allow_restart: bool,
    snapshots: bool = False,
) -> StagePlan:
    """What this run of the Proxmox stage will do, as its operations will decide it."""
    try:
        template_present: bool | None = spec.ostemplate in ct.templates(spec.template_storage)
    except PvePermissionError:
        template_present = None  # the missing listing privilege is reported itself
    ref = ct.ref()
    if ref is None:
        vmid = ct.next_vmid()
        return StagePlan(
            vmid=vmid,
            template_storage=spec.template_storage,
            template_present=template_present,
            create=create_params(spec, vmid),
            starts=True,
            snapshots=snapshots,
        )
    config = ct.config()
    changes = config_changes(spec, config) if is_unprivileged(config) else {}
    running = ct.status() == "running"
    may_restart = running and (
        bool(tun.restart_owed(ct, tun_method))
        or tun.would_change(ct, tun_method, apparmor)
        or (allow_restart and bool(ct.pending() or changes))
    )
    return StagePlan(
        vmid=ref.vmid,
        template_storage=spec.template_storage,
        template_present=template_present,
        update=changes,
        current=config,
        starts=not running,
        may_restart=may_restart,
        snapshots=snapshots,
    )


def privilege_report(
    ct: ContainerView,
    spec: ContainerSpec,
    *,
    tun_method: str,
    apparmor: bool,
    allow_restart: bool,
    snapshots: bool = False,
) -> PrivilegeReport:
    """Whether the configured identity holds every privilege this run needs, each with its
    ACL path, from one ``GET /access/permissions`` (plus one ``?path=`` per path the reply
    alone cannot decide; see :func:`.privileges.held_on`). A root@pam password login holds
    them all and is not asked."""
    api = ct.api
    if api.auth_id == "root@pam":
        return PrivilegeReport(api.auth_id, skipped="root@pam holds every privilege")
    reply = api.permissions()
    plan = stage_plan(
        ct,
        spec,
        tun_method=tun_method,
        apparmor=apparmor,
        allow_restart=allow_restart,
        snapshots=snapshots,
    )
    needs = required_privileges(plan)
    for path in undecided_paths(needs, reply):
        reply.update(api.permissions(path))
    return PrivilegeReport(api.auth_id, evaluate(needs, reply))


def require_privileges(
    ct: ContainerView,
    spec: ContainerSpec,
    *,
    tun_method: str,
    apparmor: bool,
    allow_restart: bool,
    snapshots: bool = False,
) -> None:
    """Stop the run when the API identity lacks a PVE privilege this run needs, each on the
    ACL path PVE checks it on (:mod:`deploys.proxmox.privileges`, one
    ``GET /access/permissions``): one message names every missing privilege and its path.

    Called by the stage for the node while the deploy is loaded, before any operation is
    prepared or run, so it holds with ``-y`` (which skips preparing), in ``--dry``, and for
    the container host's operations too: the run stops as a whole. A root@pam password
    login holds every privilege and is not checked.
    """
    try:
        report = privilege_report(
            ct,
            spec,
            tun_method=tun_method,
            apparmor=apparmor,
            allow_restart=allow_restart,
            snapshots=snapshots,
        )
    except PveError as exc:
        # an answer the check cannot use: PVE still refuses what is missing, naming it
        logger.warning(f"{host.print_prefix}Proxmox privilege check skipped: {exc}")
        return
    except ProxmoxError as exc:  # the settings do not pick one node or container
        raise OperationError(str(exc)) from None
    if not report.ok:
        raise OperationError(report.message())
    logger.debug(f"{host.print_prefix}{report.skipped or report.auth_id + ' holds them all'}")
