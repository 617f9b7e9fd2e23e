"""Operations on the PVE node (runbook §1-2): the template, the container, its TUN device,
and the container running with its config in effect.

The API side runs on the controller: each generator reads the API in Python and yields
``FunctionCommand`` s that make the change at execute time, so ``--dry`` creates nothing and
still says what would change. Generators run again at execute time, so they see what the
operations before them did (e.g. the container a create made). The conf-file patch goes over
the node's SSH connection like any pyinfra file edit.
"""

from __future__ import annotations

import io
import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any

from pyinfra import host
from pyinfra.api import (
    FileUploadCommand,
    FunctionCommand,
    OperationError,
    QuoteString,
    StringCommand,
    operation,
)
from pyinfra.api.host import Host
from pyinfra.api.state import State
from pyinfra.context import state as current_state

from ..common.roles import NODE_ROLE, ROLE
from .access import (
    ProxmoxError,
    Pve,
    client,
    find,
    node_name,
    privilege_report,
    wait_reachable,
)
from .client import ContainerRef
from .conf import ensure_top_lines, tun_lines
from .errors import PveError, PvePermissionError, PveTaskError
from .facts import PveConfFile
from .spec import (
    TUN_DEVICE,
    ContainerSpec,
    config_changes,
    create_params,
    free_dev_key,
    is_unprivileged,
    pending_keys,
    tun_dev_key,
)
from .tasks import wait_task

logger = logging.getLogger("pyinfra")

# Why a running container must restart, recorded at execute time by the operation that
# changed its TUN config and read by ``ct_running`` later in the same run.
_restart_reasons: dict[tuple[str, int], list[str]] = {}
_restart_lock = threading.Lock()


def _executing() -> bool:
    return bool(current_state.is_executing)


def _step(what: str, func: Callable[..., Any]) -> Callable[[State, Host], bool]:
    """Wrap an API step: a known failure is logged as one clear line and fails the host."""

    def run(state: State, host: Host) -> bool:
        try:
            func()
        except PvePermissionError as exc:
            hint = ""
            if "root@pam" in exc.reason:
                hint = " (PVE allows this only to a root@pam password login, never to a token)"
            host.log_styled(f"{what}: {exc}{hint}", fg="red", log_func=logger.error)
            return False
        except (PveError, PveTaskError, ProxmoxError, OSError) as exc:
            host.log_styled(f"{what}: {exc}", fg="red", log_func=logger.error)
            return False
        return True

    run.__name__ = what.replace(" ", "_")
    return run


def _fn(what: str, func: Callable[..., Any]) -> FunctionCommand:
    return FunctionCommand(_step(what, func), (), {})


def _wait(pve: Pve, upid: str, what: str) -> None:
    """Wait for a task; a task ending ``WARNINGS: n`` succeeds and its warnings are shown."""
    result = wait_task(client(pve), upid, timeout=pve.task_timeout)
    for line in result.warnings:
        logger.warning(f"{what}: {line}")


def _elsewhere() -> bool:
    """True on the container host: the node's operations run there too, as no-ops, so that
    pyinfra orders every container operation after them (one operation graph per run)."""
    if host.data.get(ROLE) == NODE_ROLE:
        return False
    host.noop("done on the Proxmox node")
    return True


def _require(pve: Pve) -> ContainerRef | None:
    """The container; at execute time its absence is an error (the create failed)."""
    ref = find(pve)
    if ref is None and _executing():
        raise OperationError(
            f"CT {pve.hostname} not found on {pve.host} (was it created? the API lists only "
            "containers the token has VM.Audit on)"
        )
    return ref


# --------------------------------------------------------------------------- privileges


def require_privileges(
    pve: Pve,
    spec: ContainerSpec,
    *,
    tun_method: str,
    conf_dir: str,
    apparmor: bool,
    allow_restart: bool,
) -> None:
    """Stop the run when the API identity lacks a PVE privilege this run needs, each on the
    ACL path PVE checks it on (:mod:`deploys.proxmox.privileges`, one
    ``GET /access/permissions``): one message names every missing privilege and its path.

    Called by the stage for the node while the deploy is loaded, before any operation is
    prepared or run, so it holds with ``-y`` (which skips preparing), in ``--dry``, and for
    the container host's operations too: the run stops as a whole. A root@pam password
    login holds every privilege and is not checked.
    """

    def tun_changes(ref: ContainerRef) -> bool:
        return tun_would_change(pve, ref, tun_method, conf_dir, apparmor)

    try:
        report = privilege_report(pve, spec, allow_restart, tun_changes)
    except PveError as exc:
        # an answer the check cannot use: PVE still refuses what is missing, naming it
        logger.warning(f"{host.print_prefix}Proxmox privilege check skipped: {exc}")
        return
    except ProxmoxError as exc:  # the settings do not pick one node or container
        raise OperationError(str(exc)) from None
    if not report.ok:
        raise OperationError(report.message())
    logger.debug(f"{host.print_prefix}{report.skipped or report.auth_id + ' holds them all'}")


# --------------------------------------------------------------------------- template


@operation()
def ct_template(pve: Pve, storage: str, template: str) -> Any:
    """
    Make sure an OS template is on a storage, downloading it through the node's appliance
    index (``POST /nodes/{node}/aplinfo``) when it is not.

    + pve: API connection (:class:`deploys.proxmox.access.Pve`)
    + storage: storage with content type vztmpl, e.g. ``local``
    + template: template file name from ``pveam available``

    **Example:**

    .. code:: python

        ct_template(name="Template ubuntu-24.04 on local", pve=pve, storage="local",
                    template="ubuntu-24.04-standard_24.04-2_amd64.tar.zst")
    """
    if _elsewhere():
        return
    api = client(pve)
    node = node_name(pve)
    volid = f"{storage}:vztmpl/{template}"
    present = {item.get("volid") for item in api.storage_content(node, storage, "vztmpl")}
    if volid in present:
        host.noop(f"{volid} is present")
        return
    if not any(item.get("template") == template for item in api.aplinfo(node)):
        raise OperationError(
            f"template {template!r} is neither on storage {storage!r} nor in the node's "
            "appliance index (pveam available); check ct_ostemplate"
        )

    def download() -> None:
        upid = api.download_template(node, storage, template)
        _wait(pve, upid, f"download {template}")

    yield _fn(f"download {template} to {storage}", download)


# --------------------------------------------------------------------------- container


def _create(pve: Pve, spec: ContainerSpec) -> None:
    api = client(pve)
    node = node_name(pve)
    for attempt in range(5):
        vmid = pve.vmid or api.next_id()
        try:
            upid = api.create_container(node, create_params(spec, vmid))
        except PvePermissionError as exc:
            if exc.reason != "Permission check failed":
                raise
            # create's gate is the one refusal that names nothing (pve-container create_vm)
            raise ProxmoxError(
                f"{exc} (the create needs VM.Allocate on /vms/{vmid} for {api.auth_id})"
            ) from None
        except PveError as exc:
            # nextid is racy: another create may take the id first (PVE answers 500)
            if not pve.vmid and "already exists" in exc.reason and attempt < 4:
                continue
            raise
        _wait(pve, upid, f"CT {vmid} create")
        if api.find_container(vmid=vmid) is None:
            # /cluster/resources lists only what the token may audit: without VM.Audit every
            # later step (and the next run) would not find the container it just made
            raise ProxmoxError(
                f"CT {vmid} was created, but the API does not list it to {api.auth_id}: the "
                f"token lacks VM.Audit on /vms/{vmid} (add it to the token's role)"
            )
        return


@operation()
def ct_present(pve: Pve, spec: ContainerSpec) -> Any:
    """
    The container exists with the runbook's spec. Absent: created (not started) from the
    spec. Present: what the spec owns is compared with ``GET …/config`` (property strings
    as key/value sets) and only the differences are ``PUT``. It is never destroyed or
    recreated; a privileged container is an error.

    + pve: API connection (:class:`deploys.proxmox.access.Pve`)
    + spec: the container (:class:`deploys.proxmox.spec.ContainerSpec`)

    **Example:**

    .. code:: python

        ct_present(name="CT egograph-prod", pve=pve, spec=ContainerSpec.from_settings(s))
    """
    if _elsewhere():
        return
    ref = find(pve)
    if ref is None:
        vmid = f"vmid {pve.vmid}" if pve.vmid else "the next free vmid"
        host.noop(f"CT {pve.hostname} absent; creating it with {vmid}")
        yield _fn(f"create CT {pve.hostname}", lambda: _create(pve, spec))
        return
    api = client(pve)
    config = api.container_config(ref.node, ref.vmid)
    if not is_unprivileged(config):
        raise OperationError(
            f"CT {ref.vmid} is privileged; the runbook's container is unprivileged and that "
            "cannot be changed in place (destroy it explicitly: deploys/destroy.py)"
        )
    if config.get("lock"):
        raise OperationError(f"CT {ref.vmid} is locked ({config['lock']}); try again later")
    changes = config_changes(spec, config)
    if not changes:
        host.noop(f"CT {ref.vmid} matches the settings")
        return
    keys = ", ".join(
        sorted(k for k in changes if k != "delete")
        + ([f"delete {changes['delete']}"] if "delete" in changes else [])
    )

    def update() -> None:
        api.update_config(ref.node, ref.vmid, changes)

    yield _fn(f"update CT {ref.vmid} ({keys})", update)


def destroy(pve: Pve) -> None:
    api = client(pve)
    ref = find(pve)
    if ref is None:
        return
    if api.container_status(ref.node, ref.vmid).get("status") == "running":
        wait_task(api, api.stop(ref.node, ref.vmid), timeout=pve.task_timeout)
    wait_task(api, api.destroy(ref.node, ref.vmid, purge=True), timeout=pve.task_timeout)


@operation()
def ct_absent(pve: Pve) -> Any:
    """
    The container does not exist: stopped and destroyed with its disks (explicit entry
    ``deploys/destroy.py`` only).

    **Example:**

    .. code:: python

        ct_absent(name="CT egograph-prod destroyed", pve=pve)
    """
    if _elsewhere():
        return
    ref = find(pve)
    if ref is None:
        host.noop(f"CT {pve.hostname} does not exist")
        return
    yield _fn(f"destroy CT {ref.vmid}", lambda: destroy(pve))


# --------------------------------------------------------------------------- TUN


def _mark_restart(pve: Pve, vmid: int, reason: str) -> None:
    with _restart_lock:
        _restart_reasons.setdefault((pve.host, vmid), []).append(reason)


def _take_restart(pve: Pve, vmid: int) -> list[str]:
    with _restart_lock:
        return _restart_reasons.pop((pve.host, vmid), [])


def _raw_plan(conf_dir: str, vmid: int, apparmor: bool) -> tuple[str, dict[str, Any], str | None]:
    path = f"{conf_dir}/{vmid}.conf"
    conf = host.get_fact(PveConfFile, path=path)
    if not conf["exists"]:
        raise OperationError(f"{path} not found on the node; check pve_conf_dir")
    new, changed = ensure_top_lines(conf["text"], tun_lines(apparmor))
    return path, conf, new if changed else None


def tun_would_change(
    pve: Pve, ref: ContainerRef, method: str, conf_dir: str, apparmor: bool
) -> bool:
    if method == "raw":
        return _raw_plan(conf_dir, ref.vmid, apparmor)[2] is not None
    if method == "dev":
        return tun_dev_key(client(pve).container_config(ref.node, ref.vmid)) is None
    return False


@operation()
def ct_tun(pve: Pve, method: str, conf_dir: str, apparmor: bool = False) -> Any:
    """
    Give the container ``/dev/net/tun`` (runbook §2).

    + method: ``raw`` adds ``lxc.cgroup2.devices.allow: c 10:200 rwm`` and the
      ``lxc.mount.entry`` bind line to the **top section** of the conf file on the node
      (never a snapshot or ``[pve:pending]``), idempotently, refusing to overwrite a file
      that changed since it was read; ``dev`` sets ``devN: /dev/net/tun`` through the API
      (root@pam password login only); ``none`` leaves the container without the device
    + conf_dir: the node's conf directory (``/etc/pve/lxc``)
    + apparmor: raw method: also ``lxc.apparmor.profile: unconfined``

    A change makes ``ct_running`` restart a running container.

    **Example:**

    .. code:: python

        ct_tun(name="CT /dev/net/tun (raw)", pve=pve, method="raw", conf_dir="/etc/pve/lxc")
    """
    if _elsewhere():
        return
    if method == "none":
        host.noop("TUN disabled (ct_tun_method 'none'): Tailscale runs in userspace networking")
        return
    ref = _require(pve)
    if ref is None:
        host.noop(f"CT {pve.hostname} does not exist yet; its TUN config would be added")
        yield _fn("add TUN config to the new container", lambda: None)
        return
    if method == "raw":
        path, conf, new = _raw_plan(conf_dir, ref.vmid, apparmor)
        if new is None:
            host.noop(f"{path} grants /dev/net/tun")
            return
        tmp = f"/tmp/egograph-{ref.vmid}.conf.{secrets.token_hex(6)}"
        yield FileUploadCommand(io.StringIO(new), tmp)
        # pmxcfs: rewrite in place, only if nobody changed the file since it was read
        yield StringCommand(
            "if [ \"$(sha256sum <", QuoteString(path), "| cut -c1-64)\" =",
            QuoteString(str(conf["sha256"])), "]; then cat", QuoteString(tmp), ">",
            QuoteString(path), "; rc=$?; else echo", QuoteString(f"{path} changed meanwhile"),
            ">&2; rc=1; fi; rm -f", QuoteString(tmp), "; exit $rc",
        )  # fmt: skip
        yield _fn("record restart", lambda: _mark_restart(pve, ref.vmid, "TUN lines added"))
        return
    api = client(pve)
    config = api.container_config(ref.node, ref.vmid)
    if tun_dev_key(config) is not None:
        host.noop(f"CT {ref.vmid} passes {TUN_DEVICE} through")
        return
    key = free_dev_key(config)

    def add_dev() -> None:
        api.update_config(ref.node, ref.vmid, {key: TUN_DEVICE})
        _mark_restart(pve, ref.vmid, f"{key}: {TUN_DEVICE} added")

    yield _fn(f"set {key}: {TUN_DEVICE} on CT {ref.vmid}", add_dev)


# --------------------------------------------------------------------------- running


@operation()
def ct_running(
    pve: Pve,
    allow_restart: bool,
    tun_method: str,
    conf_dir: str,
    apparmor: bool = False,
    ssh_port: int = 22,
) -> Any:
    """
    The container runs with its config in effect, and answers on SSH.

    Stopped: started. Running: restarted when this run changed its TUN config, or when
    settings wait in ``[pve:pending]`` and ``allow_restart`` is set (otherwise they are
    reported and left pending). Nothing else restarts it.

    **Example:**

    .. code:: python

        ct_running(name="CT running", pve=pve, allow_restart=False, tun_method="raw",
                   conf_dir="/etc/pve/lxc")
    """
    if _elsewhere():
        return
    ref = _require(pve)
    if ref is None:
        host.noop(f"CT {pve.hostname} does not exist yet; it would be started")
        yield _fn("start the new container", lambda: None)
        return
    api = client(pve)
    status = api.container_status(ref.node, ref.vmid).get("status")
    if status != "running":

        def start() -> None:
            _take_restart(pve, ref.vmid)
            _wait(pve, api.start(ref.node, ref.vmid), f"CT {ref.vmid} start")
            wait_reachable(pve, ref, ssh_port)

        yield _fn(f"start CT {ref.vmid}", start)
        return

    if _executing():
        reasons = list(_restart_reasons.get((pve.host, ref.vmid), []))
    else:
        would = tun_would_change(pve, ref, tun_method, conf_dir, apparmor)
        reasons = ["TUN config changes"] if would else []
    pending = pending_keys(api.pending(ref.node, ref.vmid))
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

    def restart() -> None:
        _take_restart(pve, ref.vmid)
        _wait(pve, api.reboot(ref.node, ref.vmid), f"CT {ref.vmid} restart")
        wait_reachable(pve, ref, ssh_port)

    yield _fn(f"restart CT {ref.vmid} ({'; '.join(reasons)})", restart)
