"""``egodeploy status``: each host's container, release, services, last runs and drift.

- :mod:`.facts`: the audit log's tail, the run lock's holder (looked at, never taken) and
  the release times
- :mod:`.report`: the report, its text and its exit code (pure)
- here: reading it, one remote command per host

A host's state is read in ONE command over the deploy's own connection
(:mod:`deploys.common.reach`): the deploy's own facts (the checkout with ``git ls-remote``
of ``repo_branch``, systemd's view of the units with their health, the stamps and the
rollback marker, Tailscale's status for the URLs) and the three above, framed and parsed by
the state read the deploy itself uses (:class:`deploys.common.snapshot.StateSnapshot`).
With Proxmox the container's node, vmid, state, cores and memory come from the API first;
an absent or stopped container is reported without a command. Nothing is changed, and the
run lock is not taken: a status never makes a deploy wait.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..common.stamps import STATE_DIR, audit_log
from .report import exit_code, host_report, render, unreachable

if TYPE_CHECKING:
    from ..common.snapshot import FactRead
    from ..settings import Settings


def reads(settings: Settings, entries: int) -> dict[str, FactRead[Any]]:
    """What a host's one command reads, by the name the report knows it by."""
    from ..common.snapshot import fact_read
    from ..repo.facts import GitCheckout
    from ..runlock.holder import LOCK_PATH
    from ..services.facts import ServiceStates
    from ..tailscale.facts import TailscaleStatus
    from .facts import AuditTail, ReleaseTimes, RunLockHolder

    units = [svc.unit for svc in settings.services]
    wanted: dict[str, FactRead[Any]] = {
        "checkout": fact_read(
            GitCheckout, path=settings.repo_path, url=settings.repo_url, ref=settings.repo_branch
        ),
        "services": fact_read(
            ServiceStates,
            units=units,
            repo_path=settings.repo_path,
            stamp_dir=STATE_DIR,
            health_urls=[svc.health_url for svc in settings.services],
        ),
        "times": fact_read(ReleaseTimes, units=units, stamp_dir=STATE_DIR),
        "audit": fact_read(AuditTail, path=audit_log(), lines=max(entries, 1)),
        "lock": fact_read(RunLockHolder, path=LOCK_PATH),
    }
    if settings.tailscale_enabled:
        wanted["tailscale"] = fact_read(TailscaleStatus)
    return wanted


def container_of(settings: Settings) -> dict[str, Any] | None:
    """The container as the Proxmox API shows it (None without Proxmox)."""
    if not settings.pve_host:
        return None
    from ..proxmox.access import Pve, client, find

    pve = Pve.from_settings(settings)
    ref = find(pve)
    if ref is None:
        return {"node": None, "vmid": None, "state": "absent", "cores": None, "memory_mb": None}
    api = client(pve)
    status = api.container_status(ref.node, ref.vmid)
    config = api.container_config(ref.node, ref.vmid, current=True)
    return {
        "node": ref.node,
        "vmid": ref.vmid,
        "state": str(status.get("status", ref.status)),
        "cores": int(config["cores"]) if "cores" in config else None,
        "memory_mb": int(config["memory"]) if "memory" in config else None,
    }


def read_host(target: Any, settings: Settings, entries: int, show_commands: bool) -> dict[str, Any]:
    """One host's report: the API, then its one command."""
    from pyinfra.api.exceptions import PyinfraError

    from ..common.snapshot import Reads, StateSnapshot
    from ..proxmox.access import ProxmoxError

    try:
        container = container_of(settings)
    except (ProxmoxError, OSError, ValueError) as exc:
        return unreachable(f"Proxmox API: {exc}")
    if container is not None and container["state"] != "running":
        return unreachable(f"the container is {container['state']}", container)
    wanted = reads(settings, entries)
    snapshot = StateSnapshot()
    command = snapshot.command(Reads(wanted.values()))
    try:
        ok, output = target.run_shell_command(command, print_input=show_commands)
    except (PyinfraError, ConnectionError, OSError) as exc:
        return unreachable(str(exc) or type(exc).__name__, container)
    if not ok:
        return unreachable(" ".join(output.stderr_lines)[-500:] or "the read failed", container)
    taken = snapshot.process(output.stdout_lines)
    values = {name: taken.get(read.key, read.fact.default()) for name, read in wanted.items()}
    return host_report(settings, values, container)


def show_status(
    project_dir: Path, inventory: str, entries: int, as_json: bool, show_commands: bool
) -> tuple[int, str]:
    """Every host's status, all hosts at once: (exit code, the text or JSON to print)."""
    import json

    from ..common.reach import patch_gevent, reached

    patch_gevent()
    from gevent import joinall, spawn

    from ..hostsettings import settings_of

    if show_commands:
        _echo_to_stderr()
    with reached(project_dir, inventory, tolerate_unreachable=True) as (_state, targets):

        def one(target: Any) -> dict[str, Any]:
            if not target.connected:
                return unreachable("could not connect (SSH)")
            return read_host(target, settings_of(target.data), entries, show_commands)

        runs = {t.name: spawn(one, t) for t in targets}
        joinall(list(runs.values()), raise_error=True)
        hosts = {name: run.value for name, run in runs.items()}
    code = exit_code(hosts)
    if as_json:
        return code, json.dumps({"exit_code": code, "hosts": hosts}, indent=2)
    return code, render(hosts, entries)


def _echo_to_stderr() -> None:
    """pyinfra's ``>>>`` lines (each remote command) on stderr, as its CLI prints them."""
    import sys

    from pyinfra.api.output import set_echo

    set_echo(lambda message=None, **_: print(message, file=sys.stderr, flush=True))
