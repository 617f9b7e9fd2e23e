"""The API steps the Proxmox operations yield: each a ``FunctionCommand`` that runs on the
controller when the operation executes (``--dry`` runs none), waits for the task it
starts, shows a task's warnings, and fails the host with one clear line on a known error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pyinfra.api import FunctionCommand
from pyinfra.context import ctx_host

from ..common.progress import progress_line
from .access import ProxmoxError, wait_reachable
from .errors import PveError, PvePermissionError, PveTaskError
from .hostkey import HostKeyError, forget_container
from .spec import create_params
from .tasks import wait_task

if TYPE_CHECKING:
    from pyinfra.api.host import Host
    from pyinfra.api.state import State

    from .client import ContainerRef
    from .spec import ContainerSpec
    from .view import ContainerView

logger = logging.getLogger("pyinfra")

CREATE_ATTEMPTS = 5
"""``/cluster/nextid`` is racy: another create may take the id first (PVE answers 500)."""


def api_step(what: str, func: Callable[[], None]) -> FunctionCommand:
    """``func`` as a command; a known failure is logged as ``<what>: <error>`` and fails
    the host (no traceback)."""

    def run(state: State, host: Host) -> bool:
        try:
            func()
        except PvePermissionError as exc:
            hint = ""
            if "root@pam" in exc.reason:
                hint = " (PVE allows this only to a root@pam password login, never to a token)"
            host.log_styled(f"{what}: {exc}{hint}", fg="red", log_func=logger.error)
            return False
        except (PveError, PveTaskError, ProxmoxError, HostKeyError, OSError) as exc:
            host.log_styled(f"{what}: {exc}", fg="red", log_func=logger.error)
            return False
        return True

    run.__name__ = what.replace(" ", "_")
    return FunctionCommand(run, (), {})


def undecided(what: str) -> FunctionCommand:
    """What an operation yields while preparing for a change it can only decide once an
    earlier one has run (the container this run creates). Executing runs the operation
    again, which decides it then, so this step never runs; if it did, it would fail rather
    than pretend."""

    def run() -> None:
        raise ProxmoxError(f"{what}: planned before the container existed; run the deploy again")

    return api_step(what, run)


def wait(ct: ContainerView, upid: str, what: str) -> None:
    """Wait for a task, saying every few seconds how long it has run and its log's newest
    line; a task ending ``WARNINGS: n`` succeeds and its warnings are shown."""

    def progress(elapsed: float, last: str) -> None:
        say(progress_line(what, elapsed, last))

    result = wait_task(ct.api, upid, timeout=ct.pve.task_timeout, progress=progress)
    for line in result.warnings:
        logger.warning(f"{what}: {line}")


def download_template(ct: ContainerView, storage: str, template: str) -> FunctionCommand:
    def download() -> None:
        upid = ct.api.download_template(ct.node(), storage, template)
        wait(ct, upid, f"download {template}")

    return api_step(f"download {template} to {storage}", download)


def create(ct: ContainerView, spec: ContainerSpec) -> FunctionCommand:
    """Create the container (not started), with ``ct_vmid`` or the next free vmid."""
    pve, api = ct.pve, ct.api

    def run() -> None:
        for attempt in range(CREATE_ATTEMPTS):
            vmid = pve.vmid or api.next_id()
            try:
                upid = api.create_container(ct.node(), create_params(spec, vmid))
            except PvePermissionError as exc:
                if exc.reason != "Permission check failed":
                    raise
                # create's gate is the one refusal that names nothing (pve-container create_vm)
                raise ProxmoxError(
                    f"{exc} (the create needs VM.Allocate on /vms/{vmid} for {api.auth_id})"
                ) from None
            except PveError as exc:
                if (
                    not pve.vmid
                    and "already exists" in exc.reason
                    and attempt + 1 < CREATE_ATTEMPTS
                ):
                    continue
                raise
            wait(ct, upid, f"CT {vmid} create")
            if api.find_container(vmid=vmid) is None:
                # /cluster/resources lists only what the token may audit: without VM.Audit
                # every later step (and the next run) would not find the container it made
                raise ProxmoxError(
                    f"CT {vmid} was created, but the API does not list it to {api.auth_id}: "
                    f"the token lacks VM.Audit on /vms/{vmid} (add it to the token's role)"
                )
            _forget_host_key(ct, f"CT {vmid} was created")
            return

    return api_step(f"create CT {pve.hostname}", run)


def update(ct: ContainerView, ref: ContainerRef, changes: Mapping[str, Any]) -> FunctionCommand:
    keys = ", ".join(
        sorted(k for k in changes if k != "delete")
        + ([f"delete {changes['delete']}"] if "delete" in changes else [])
    )
    return api_step(
        f"update CT {ref.vmid} ({keys})",
        lambda: ct.api.update_config(ref.node, ref.vmid, changes),
    )


def start(ct: ContainerView, ref: ContainerRef, ssh_port: int) -> FunctionCommand:
    """Start the container and wait until it answers on ``ssh_port``."""

    def run() -> None:
        wait(ct, ct.api.start(ref.node, ref.vmid), f"CT {ref.vmid} start")
        wait_reachable(ct.pve, ref, ssh_port)

    return api_step(f"start CT {ref.vmid}", run)


def restart(
    ct: ContainerView, ref: ContainerRef, reasons: list[str], ssh_port: int
) -> FunctionCommand:
    """Reboot the container (PVE applies its pending config and regenerates the LXC config)
    and wait until it answers on ``ssh_port``."""

    def run() -> None:
        wait(ct, ct.api.reboot(ref.node, ref.vmid), f"CT {ref.vmid} restart")
        wait_reachable(ct.pve, ref, ssh_port)

    return api_step(f"restart CT {ref.vmid} ({'; '.join(reasons)})", run)


def destroy(ct: ContainerView, ref: ContainerRef, running: bool) -> FunctionCommand:
    """Stop the container when it runs, then destroy it with its disks."""

    def run() -> None:
        if running:
            wait(ct, ct.api.stop(ref.node, ref.vmid), f"CT {ref.vmid} stop")
        wait(ct, ct.api.destroy(ref.node, ref.vmid, purge=True), f"CT {ref.vmid} destroy")
        _forget_host_key(ct, f"CT {ref.vmid} was destroyed")

    return api_step(f"destroy CT {ref.vmid}", run)


def say(line: str) -> None:
    """``line`` in pyinfra's normal output (INFO, on stderr, so never in ``--json``), behind
    the host's prefix while an operation of a host runs (as pyinfra's own lines are)."""
    if ctx_host.isset():
        ctx_host.get().log(line)
    else:
        logger.info(line)


def _forget_host_key(ct: ContainerView, why: str) -> None:
    """The container this deploy (re-)created or destroyed has a new host key or none: its
    pinned lines go (the next contact pins the new key, read through the node). A key that
    changes for a container the deploy did not re-create is never dropped here."""
    if forget_container(ct.pve.known_hosts, ct.pve.host_key_tag):
        logger.info(f"{why}: its host key lines removed from {ct.pve.known_hosts}")
