"""``egodeploy rollback --snapshot NAME`` (and ``--list``): the container back to one of its
snapshots, through the API, then waited for until it answers SSH and its services are
healthy.

Each target of the inventory that the Proxmox stage manages (``pve_host`` set) is found
through the API (as a deploy finds it); the caller's privilege to roll back is checked
first (``GET /access/permissions``: VM.Snapshot or VM.Snapshot.Rollback on its path), and
an unknown snapshot name is refused, both before anything changes. The rollback
(``POST …/snapshot/{snapname}/rollback start=1``) stops the container, puts its disk and
config back and starts it; then the services are read over the deploy's own connection
(``ServiceStates``, its host key pinned) until every one is active and answers its health
URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..common.roles import NODE_ROLE, ROLE


class RevertError(Exception):
    """The rollback (or the listing) cannot go on; the message says why."""


def _targets(hosts: Any) -> list[Any]:
    return [h for h in hosts if h.data.get(ROLE) != NODE_ROLE]


def _container(settings: Any) -> tuple[Any, Any]:
    from .access import Pve, find

    if not settings.pve_host:
        raise RevertError(
            "rollback --snapshot needs the Proxmox stage (pve_host set): without it the "
            "container's snapshots are not the deploy's to use"
        )
    pve = Pve.from_settings(settings)
    ref = find(pve)
    if ref is None:
        raise RevertError(f"CT {pve.hostname} not found on {pve.host}")
    return pve, ref


def _when(snaptime: Any) -> str:
    if not snaptime:
        return "?"
    return datetime.fromtimestamp(int(snaptime), UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def list_snapshots(project_dir: Path, inventory: str) -> list[str]:
    """Each target's snapshots (the deploy's own marked), newest last."""
    from ..common.reach import inventory_state, patch_gevent

    patch_gevent()
    from ..hostsettings import settings_of
    from .access import client
    from .snapshots import PREFIX, listing

    lines: list[str] = []
    with inventory_state(project_dir, inventory) as (_state, hosts):
        for target in _targets(hosts):
            pve, ref = _container(settings_of(target.data))
            snaps = [s for s in listing(client(pve), ref) if s.get("name") != "current"]
            snaps.sort(key=lambda s: (int(s.get("snaptime") or 0), str(s.get("name"))))
            lines.append(f"{target.name}: CT {ref.vmid} on {ref.node}, {len(snaps)} snapshot(s)")
            for s in snaps:
                own = "" if str(s.get("name")).startswith(PREFIX) else " (not the deploy's)"
                desc = f"  {s['description']}" if s.get("description") else ""
                lines.append(f"  {s.get('name')}  {_when(s.get('snaptime'))}{own}{desc}")
    return lines


def _check_privilege(api: Any, ref: Any) -> None:
    from .privileges import PrivilegeReport, evaluate, rollback_need, undecided_paths

    if api.auth_id == "root@pam":
        return
    needs = [rollback_need(ref.vmid)]
    reply = api.permissions()
    for path in undecided_paths(needs, reply):
        reply.update(api.permissions(path))
    report = PrivilegeReport(api.auth_id, evaluate(needs, reply))
    if not report.ok:
        raise RevertError(report.message())


def _healthy(target: Any, settings: Any, deadline: float) -> dict[str, Any]:
    """Wait until every service is active and answers its health URL; its states."""
    from ..services import service_probe

    wanted = service_probe(settings).read()
    fact = wanted.fact()
    command = fact.command(**wanted.kwargs)
    why = "not read yet"
    while True:
        try:
            ok, output = target.run_shell_command(command)
            if ok:
                states: dict[str, Any] = fact.process(output.stdout_lines)
                units = states.get("units") or {}
                bad = [
                    u
                    for u in (svc.unit for svc in settings.services)
                    if (units.get(u) or {}).get("ActiveState") != "active"
                    or (units.get(u) or {}).get("healthy") is False
                ]
                if not bad:
                    return states
                why = f"not healthy yet: {', '.join(bad)}"
            else:
                why = " ".join(output.stderr_lines)[-300:] or "the read failed"
        except (ConnectionError, OSError) as exc:
            why = str(exc) or type(exc).__name__
        if time.monotonic() >= deadline:
            raise RevertError(f"{target.name}: the services did not come back healthy ({why})")
        time.sleep(1.0)


def rollback_to_snapshot(
    project_dir: Path, inventory: str, name: str, echo: Callable[[str], None]
) -> None:
    """Every target back to snapshot ``name``; ``echo`` says what was done."""
    from ..common.reach import inventory_state, patch_gevent

    patch_gevent()
    from pyinfra.api.state import StateStage

    from ..hostsettings import settings_of
    from .access import client, container_ssh_port, wait_reachable
    from .errors import PveError, PveTaskError
    from .snapshots import SnapshotError, listing, rollback, valid_snapname

    if not valid_snapname(name):
        raise RevertError(
            f"--snapshot: {name!r} is not a snapshot name (a letter, then letters, digits "
            "and '_', at most 40 chars), e.g. egograph_0123456789ab (see --list)"
        )
    with inventory_state(project_dir, inventory) as (state, hosts):
        targets = _targets(hosts)
        plans = []
        for target in targets:  # every check first: nothing changes unless all pass
            settings = settings_of(target.data)
            pve, ref = _container(settings)
            api = client(pve)
            try:
                _check_privilege(api, ref)
                snaps = {str(s.get("name")): s for s in listing(api, ref)}
            except PveError as exc:
                raise RevertError(f"{target.name}: {exc}") from None
            if name not in snaps or name == "current":
                known = ", ".join(n for n in snaps if n != "current") or "none"
                raise RevertError(
                    f"{target.name}: CT {ref.vmid} has no snapshot {name!r} (its snapshots: "
                    f"{known}); nothing was changed"
                )
            plans.append((target, settings, pve, ref, snaps[name]))
        for target, _settings, pve, ref, snap in plans:
            echo(
                f"{target.name}: rolling CT {ref.vmid} back to {name} (taken "
                f"{_when(snap.get('snaptime'))}); PVE stops it, restores it and starts it"
            )
            try:
                rollback(client(pve), ref, name, timeout=float(pve.task_timeout))
                wait_reachable(pve, ref, container_ssh_port(hosts, pve))
            except (SnapshotError, PveError, PveTaskError) as exc:
                raise RevertError(f"{target.name}: {exc}") from None
        # Commands now run for real: the lazy connector (@pvelxc) connects to the container.
        state.is_executing = True
        state.set_stage(StateStage.Execute)
        for target, settings, pve, ref, _snap in plans:
            deadline = time.monotonic() + settings.service_health_timeout + pve.task_timeout
            target.connect(reason="rollback --snapshot", raise_exceptions=True)
            states = _healthy(target, settings, deadline)
            units = ", ".join(svc.unit for svc in settings.services)
            echo(
                f"{target.name}: CT {ref.vmid} is back on {name}: {units} healthy, the "
                f"checkout at {str(states.get('head') or 'unknown')[:12]}. The next deploy "
                "releases repo_branch again (pin repo_branch to stay on this release)"
            )
