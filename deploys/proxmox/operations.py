"""Operations on the PVE node (runbook §1-2): the template, the container, its TUN device,
and the container running with its config in effect.

Each decides from ``ct``, the run's one read of the container
(:class:`.view.ContainerView`), then yields the steps of :mod:`.commands` (API calls run on
the controller when the operation executes, so ``--dry`` creates nothing and still says
what would change) or says why nothing is needed. Operations run again when they execute:
the first command they yield drops the read (:func:`.view.operation`), so each decides
from what the ones before it did (e.g. the container a create made). The conf-file patch goes over the node's SSH
connection like any pyinfra file edit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pyinfra import host
from pyinfra.api import OperationError

from ..common.report import change_reason, not_applied, refuse, warn_once
from ..common.roles import NODE_ROLE, ROLE
from . import commands, tun
from .spec import (
    MARKER_TAG,
    TUN_DEVICE,
    ContainerSpec,
    config_changes,
    creation_only_differences,
    is_marked,
    is_unprivileged,
    unrecorded,
)
from .view import ContainerView, operation

logger = logging.getLogger("pyinfra")


def _elsewhere() -> bool:
    """True on the container host: the node's operations run there too, as no-ops, so that
    pyinfra orders every container operation after them (one operation graph per run)."""
    if host.data.get(ROLE) == NODE_ROLE:
        return False
    host.noop("done on the Proxmox node")
    return True


def _once_created(ct: ContainerView, what: str) -> Iterator[Any]:
    """While preparing against a container this run creates (``ct_present`` comes first):
    a change. It is decided for real when the operation executes, once the container
    exists, so what is yielded here stands for it and never runs (:func:`.commands.undecided`).
    """
    change_reason(f"CT {ct.pve.hostname} is created by this run: {what} then")
    yield commands.undecided(what)


@operation()
def ct_template(ct: ContainerView, storage: str, template: str) -> Any:
    """
    Make sure an OS template is on a storage, downloading it through the node's appliance
    index (``POST /nodes/{node}/aplinfo``) when it is not.

    + ct: the run's read of the node (:class:`deploys.proxmox.view.ContainerView`)
    + storage: storage with content type vztmpl, e.g. ``local``
    + template: template file name from ``pveam available``

    **Example:**

    .. code:: python

        ct_template(name="Template ubuntu-24.04 on local", ct=ct, storage="local",
                    template="ubuntu-24.04-standard_24.04-2_amd64.tar.zst")
    """
    if _elsewhere():
        return
    volid = f"{storage}:vztmpl/{template}"
    if volid in ct.templates(storage):
        host.noop(f"{volid} is present")
        return
    change_reason(f"{volid} is missing")
    if not any(item.get("template") == template for item in ct.api.aplinfo(ct.node())):
        raise OperationError(
            f"template {template!r} is neither on storage {storage!r} nor in the node's "
            "appliance index (pveam available); check ct_ostemplate"
        )
    yield commands.download_template(ct, storage, template)


@operation()
def ct_present(ct: ContainerView, spec: ContainerSpec) -> Any:
    """
    The container exists with the runbook's spec. Absent: created (not started) from the
    spec. Present: what the spec owns is compared with ``GET …/config`` (property strings
    as key/value sets) and only the differences are ``PUT``. It is never destroyed or
    recreated; a privileged container is an error.

    + ct: the run's read of the container (:class:`deploys.proxmox.view.ContainerView`)
    + spec: the container (:class:`deploys.proxmox.spec.ContainerSpec`)

    **Example:**

    .. code:: python

        ct_present(name="CT egograph-prod", ct=ct, spec=ContainerSpec.from_settings(s))
    """
    if _elsewhere():
        return
    ref = ct.ref()
    if ref is None:
        vmid = f"vmid {ct.pve.vmid}" if ct.pve.vmid else "the next free vmid"
        change_reason(f"CT {spec.hostname} does not exist: created with {vmid}")
        yield commands.create(ct, spec)
        return
    config = ct.config()
    if not is_unprivileged(config):
        raise OperationError(
            f"CT {ref.vmid} is privileged; the runbook's container is unprivileged and that "
            "cannot be changed in place (destroy it explicitly: deploys/destroy.py)"
        )
    if config.get("lock"):
        raise OperationError(f"CT {ref.vmid} is locked ({config['lock']}); try again later")
    for difference in creation_only_differences(spec, config):
        not_applied(f"CT {ref.vmid}: {difference}")
    unknown = unrecorded(config)
    if unknown:
        warn_once(f"CT {ref.vmid}: {unknown}")
    changes = config_changes(spec, config)
    if not changes:
        host.noop(f"CT {ref.vmid} matches the settings it can change")
        return
    change_reason(f"CT {ref.vmid} differs from the settings: {', '.join(sorted(changes))}")
    yield commands.update(ct, ref, changes)


@operation()
def ct_absent(ct: ContainerView) -> Any:
    """
    The container does not exist: stopped and destroyed with its disks (explicit entry
    ``deploys/destroy.py`` only).

    + ct: the run's read of the container (:class:`deploys.proxmox.view.ContainerView`)

    **Example:**

    .. code:: python

        ct_absent(name="CT egograph-prod destroyed", ct=ct)
    """
    if _elsewhere():
        return
    ref = ct.ref()
    if ref is None:
        host.noop(f"CT {ct.pve.hostname} does not exist")
        return
    if not is_marked(ct.config()):
        yield from refuse(
            f"CT {ref.vmid} ({ref.name or ct.pve.hostname}) was not created by this deploy (it "
            f"lacks the tag {MARKER_TAG!r}); deploys/destroy.py destroys only containers it "
            f"created. Nothing was destroyed: check ct_vmid/ct_hostname, or destroy it on the "
            f"node yourself (pct destroy {ref.vmid})"
        )
        return
    change_reason(f"CT {ref.vmid} exists (created by this deploy)")
    clear = tun.clear_restart(ct, ref, "raw") if ct.conf_dir is not None else []
    yield commands.destroy(ct, ref, running=ct.status() == "running")
    yield from clear  # a restart record beside the conf file goes with the container


@operation()
def ct_tun(ct: ContainerView, method: str, apparmor: bool = False) -> Any:
    """
    Give the container ``/dev/net/tun`` (runbook §2).

    + ct: the run's read of the container (:class:`deploys.proxmox.view.ContainerView`;
      with ``raw``, it reads the conf file on the node)
    + method: ``raw`` adds ``lxc.cgroup2.devices.allow: c 10:200 rwm`` and the
      ``lxc.mount.entry`` bind line to the **top section** of the conf file on the node
      (never a snapshot or ``[pve:pending]``), idempotently, refusing to overwrite a file
      that changed since it was read; ``dev`` sets ``devN: /dev/net/tun`` through the API
      (root@pam password login only); ``none`` leaves the container without the device
    + apparmor: raw method: also ``lxc.apparmor.profile: unconfined``

    A change records on the node the restart it owes (see :mod:`deploys.proxmox.tun`), and
    ``ct_running`` makes it, in this run or, should this one die first, the next.

    **Example:**

    .. code:: python

        ct_tun(name="CT /dev/net/tun (raw)", ct=ct, method="raw")
    """
    if _elsewhere():
        return
    if method == "none":
        host.noop("TUN disabled (ct_tun_method 'none'): Tailscale runs in userspace networking")
        return
    ref = ct.require()
    if ref is None:
        yield from _once_created(ct, f"{TUN_DEVICE} is added ({method})")
        return
    if method == "raw":
        patch = tun.raw_patch(ct, apparmor)
        if patch is None:
            host.noop(f"{ct.conf_file()['path']} grants /dev/net/tun")
            return
        change_reason(f"the top section of {patch.path} lacks the TUN lines")
        yield from tun.rewrite_commands(patch, ref.vmid)
        return
    key = tun.dev_key_to_add(ct)
    if key is None:
        host.noop(f"CT {ref.vmid} passes {TUN_DEVICE} through")
        return
    change_reason(f"no devN of CT {ref.vmid} passes {TUN_DEVICE} through")
    yield tun.add_dev(ct, ref, key)


@operation()
def ct_running(
    ct: ContainerView,
    *,
    allow_restart: bool,
    tun_method: str,
    ssh_port: int,
    apparmor: bool = False,
) -> Any:
    """
    The container runs with its config in effect, and answers on SSH.

    Stopped: started. Running: restarted when a TUN change owes it a restart (recorded on
    the node: by this run, or by one that died before restarting it), or when settings
    wait in ``[pve:pending]`` and ``allow_restart`` is set (otherwise they are reported and
    left pending). Nothing else restarts it. A start or restart clears the record.

    + ct: the run's read of the container (:class:`deploys.proxmox.view.ContainerView`)
    + allow_restart: restart a running container for pending settings
    + tun_method, apparmor: as ``ct_tun`` (a dry run predicts its restart)
    + ssh_port: the container host's SSH port (its ``ssh_port`` data, as its connector
      uses it), waited for after a start or restart

    **Example:**

    .. code:: python

        ct_running(name="CT running", ct=ct, allow_restart=False, tun_method="raw",
                   ssh_port=22)
    """
    if _elsewhere():
        return
    ref = ct.require()
    if ref is None:
        yield from _once_created(ct, "it is started")
        return
    owed = tun.restart_owed(ct, tun_method)
    clear = tun.clear_restart(ct, ref, tun_method)
    if ct.status() != "running":
        change_reason(f"CT {ref.vmid} is {ct.status()}")
        yield commands.start(ct, ref, ssh_port)
        yield from clear
        return

    # While preparing, ct_tun has not run yet: its change is predicted.
    reasons = owed or (["TUN config changes"] if tun.would_change(ct, tun_method, apparmor) else [])
    pending = ct.pending()
    if pending and allow_restart:
        reasons.append(f"pending: {', '.join(pending)}")
    elif pending:
        logger.warning(
            f"{host.print_prefix}CT {ref.vmid}: {', '.join(pending)} pending until the next "
            "start (set ct_allow_restart = True to let the deploy restart it)"
        )
    if not reasons:
        host.noop(f"CT {ref.vmid} is running with its config in effect")
        return
    change_reason(f"CT {ref.vmid} runs without its config in effect: {'; '.join(reasons)}")
    yield commands.restart(ct, ref, reasons, ssh_port)
    yield from clear
