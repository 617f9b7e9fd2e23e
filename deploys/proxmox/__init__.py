"""Proxmox VE side of the deploy (runbook §1-2): the container through the API, its
``/dev/net/tun``, and the container running and reachable.

- :mod:`.client`: the API client (token or password ticket, TLS verification, tasks)
- :mod:`.conf`: pure edits of the node's conf files; :mod:`.spec`: the container spec and
  its diff against the API's config
- :mod:`.access`: client, container lookup and address from the settings, and the privilege
  report for a run
- :mod:`.privileges`: pure: the privileges (and ACL paths) a run needs, checked against
  ``GET /access/permissions``
- :mod:`.facts` / :mod:`.operations`: what runs against the node host
- :mod:`.connector`: ``@pvelxc/<name>``, the container host, connected on first use
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyinfra import host
from pyinfra.api import deploy

from ..common.roles import NODE_ROLE, ROLE

if TYPE_CHECKING:
    from ..settings import Settings

# The API client (proxmoxer, requests) is imported only when a node is configured: every
# run of a deploy without Proxmox would otherwise pay ~0.2 s of imports for nothing.


@deploy("Proxmox")
def ensure_container(settings: Settings) -> None:
    """Template, container, TUN, running and reachable. Called for every host: the operations
    work on the node and are no-ops on the container host; nothing at all without Proxmox."""
    if not settings.pve_host:
        return
    from .access import Pve
    from .operations import ct_present, ct_running, ct_template, ct_tun, require_privileges
    from .spec import ContainerSpec

    pve = Pve.from_settings(settings)
    spec = ContainerSpec.from_settings(settings)
    if host.data.get(ROLE) == NODE_ROLE:
        # before any operation: a missing privilege stops the whole run, nothing changed
        require_privileges(
            pve,
            spec,
            tun_method=settings.ct_tun_method,
            conf_dir=settings.pve_conf_dir,
            apparmor=settings.ct_apparmor_unconfined,
            allow_restart=settings.ct_allow_restart,
        )
    label = f"CT {spec.hostname}"
    ct_template(
        name=f"Template {spec.template} on {spec.template_storage}",
        pve=pve,
        storage=spec.template_storage,
        template=spec.template,
    )
    ct_present(name=f"{label} exists with the runbook's spec", pve=pve, spec=spec)
    ct_tun(
        name=f"{label} /dev/net/tun ({settings.ct_tun_method})",
        pve=pve,
        method=settings.ct_tun_method,
        conf_dir=settings.pve_conf_dir,
        apparmor=settings.ct_apparmor_unconfined,
    )
    ct_running(
        name=f"{label} running with its config in effect",
        pve=pve,
        allow_restart=settings.ct_allow_restart,
        tun_method=settings.ct_tun_method,
        conf_dir=settings.pve_conf_dir,
        apparmor=settings.ct_apparmor_unconfined,
    )


@deploy("Proxmox destroy")
def destroy_container(settings: Settings) -> None:
    if not settings.pve_host:
        return
    from .access import Pve
    from .operations import ct_absent

    ct_absent(name=f"CT {settings.ct_hostname} destroyed", pve=Pve.from_settings(settings))
