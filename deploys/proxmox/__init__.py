"""Proxmox VE side of the deploy (runbook §1-2): the container through the API, its
``/dev/net/tun``, and the container running and reachable.

- :mod:`.settings`: the container's and the node's settings
- :mod:`.client` (the calls), :mod:`.transport` (token or password ticket, TLS),
  :mod:`.errors`, :mod:`.tasks` (waiting for one): the API client
- :mod:`.access`: client, container lookup and address from the settings
- :mod:`.spec` (the container spec and its diff against the API's config), :mod:`.conf`
  (edits of the node's conf files), :mod:`.privileges` (what a run needs, against
  ``GET /access/permissions``): pure
- :mod:`.view`: the run's one read of the container, which the operations decide from
- :mod:`.preflight`: the privilege check before anything changes
- :mod:`.operations` (decisions), :mod:`.commands` (the API steps they yield), :mod:`.tun`
  (the TUN device), :mod:`.facts` (the node's conf file): what runs against the node host
- :mod:`.connector`: ``@pvelxc/<name>``, the container host, connected on first use
- :mod:`.snapshots` (pure rules and the API steps), :mod:`.release_snapshot` (the
  operation on the container host): the snapshot before a release, keep N, rollback
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyinfra import host
from pyinfra.api import deploy

from ..common.roles import NODE_ROLE, ROLE

if TYPE_CHECKING:
    from ..repo.commit import Commit
    from ..settings import Settings
    from .view import ContainerView

# The API client (proxmoxer, requests) is imported only when a node is configured: every
# run of a deploy without Proxmox would otherwise pay ~0.2 s of imports for nothing.


@deploy("Proxmox")
def ensure_container(settings: Settings) -> None:
    """Template, container, TUN, running and reachable. Called for every host: the operations
    work on the node and are no-ops on the container host; nothing at all without Proxmox."""
    if not settings.pve_host:
        return
    from .access import container_ssh_port
    from .operations import ct_present, ct_running, ct_template, ct_tun
    from .preflight import require_privileges
    from .spec import ContainerSpec

    ct = _view(settings)
    spec = ContainerSpec.from_settings(settings)
    if host.data.get(ROLE) == NODE_ROLE:
        # before any operation: a missing privilege stops the whole run, nothing changed
        require_privileges(
            ct,
            spec,
            tun_method=settings.ct_tun_method,
            apparmor=settings.ct_apparmor_unconfined,
            allow_restart=settings.ct_allow_restart,
            snapshots=settings.pve_snapshot_before_release,
        )
    label = f"CT {spec.hostname}"
    ct_template(
        name=f"Template {spec.template} on {spec.template_storage}",
        ct=ct,
        storage=spec.template_storage,
        template=spec.template,
    )
    ct_present(name=f"{label} exists with the runbook's spec", ct=ct, spec=spec)
    ct_tun(
        name=f"{label} /dev/net/tun ({settings.ct_tun_method})",
        ct=ct,
        method=settings.ct_tun_method,
        apparmor=settings.ct_apparmor_unconfined,
    )
    ct_running(
        name=f"{label} running with its config in effect",
        ct=ct,
        allow_restart=settings.ct_allow_restart,
        tun_method=settings.ct_tun_method,
        apparmor=settings.ct_apparmor_unconfined,
        # the port the container host connects on, not the node's own SSH port
        ssh_port=container_ssh_port(host.state.inventory, ct.pve),
    )


@deploy("Proxmox snapshot")
def snapshot_before_release(settings: Settings, commit: Commit) -> None:
    """On the container host, before the checkout moves: a snapshot of the container when
    the release changes code, dependencies or config (``pve_snapshot_before_release``;
    nothing without Proxmox)."""
    if not settings.pve_host or not settings.pve_snapshot_before_release:
        return
    from ..services import service_probe, wanted_releases, wanted_units
    from .access import Pve
    from .release_snapshot import snapshot_before_release as snapshot
    from .snapshots import PREFIX, WantedService

    services = tuple(
        WantedService(s.unit, s.unit_sha256, s.env_sha256)
        for s in wanted_releases(settings, wanted_units(settings))
    )
    snapshot(
        name=f"Snapshot CT {settings.ct_hostname} before a release ({PREFIX}<commit>, keep "
        f"{settings.pve_snapshot_keep})",
        services=services,
        probe=service_probe(settings),
        commit=commit,
        pve=Pve.from_settings(settings),
        keep=settings.pve_snapshot_keep,
        unsupported_ok=settings.pve_snapshot_unsupported_ok,
    )


@deploy("Proxmox destroy")
def destroy_container(settings: Settings) -> None:
    if not settings.pve_host:
        return
    from .operations import ct_absent

    ct_absent(name=f"CT {settings.ct_hostname} destroyed", ct=_view(settings))


def _view(settings: Settings) -> ContainerView:
    """This run's read of the container, for the current host (the node's operations and
    its privilege check share it; on the container host it is never read)."""
    from .access import Pve
    from .view import ContainerView

    conf_dir = settings.pve_conf_dir if settings.ct_tun_method == "raw" else None
    return ContainerView(Pve.from_settings(settings), host, conf_dir)
