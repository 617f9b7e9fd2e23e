"""Container snapshots before a release, keeping the last N, and rolling back to one.

Pure rules first (when a release takes a snapshot, its name, which of the deploy's own
snapshots go), then the API steps on the controller (take one, prune, roll back), which
the operation in :mod:`.release_snapshot` and ``egodeploy rollback --snapshot`` use.

The calls, after pve-container ``src/PVE/API2/LXC/Snapshot.pm`` and ``API2/LXC.pm``
(privileges: ``shared/pve-api/PERMISSIONS.md`` §2.19):

- ``GET …/snapshot`` (VM.Audit): the snapshots and ``current``
- ``GET …/feature?feature=snapshot`` (VM.Audit): whether every volume's storage can
- ``POST …/snapshot`` ``snapname`` (VM.Snapshot): a ``vzsnapshot`` task
- ``DELETE …/snapshot/{snapname}`` (VM.Snapshot): a ``vzdelsnapshot`` task
- ``POST …/snapshot/{snapname}/rollback`` ``start=1`` (VM.Snapshot or
  VM.Snapshot.Rollback): a ``vzrollback`` task that stops the container, puts its volumes
  and config back, and starts it (PVE 8 and 9 alike have ``start``)
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import ContainerRef, PveClient

logger = logging.getLogger("pyinfra")

PREFIX = "egograph_"
"""What the deploy's own snapshots are called by: only these are ever deleted."""
NAME_MAX = 40
"""``snapname``: format ``pve-configid`` with maxLength 40 (the schema of both versions)."""
_CONFIGID = re.compile(r"^[a-z][a-z0-9_]+$", re.IGNORECASE)
"""pve-common JSONSchema.pm ``pve_verify_configid``."""


class SnapshotError(Exception):
    """A snapshot step cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class WantedService:
    """What a release starts one service with: its unit, and the digests of the unit file
    and env file it wants (``env_sha256`` None: the env file is kept on the server)."""

    unit: str
    unit_sha256: str
    env_sha256: str | None


def snapshot_name(commit: str) -> str:
    """``egograph_<first 12 hex digits>``: a valid ``pve-configid`` well under 40 chars."""
    if not re.fullmatch(r"[0-9a-f]{12,64}", commit):
        raise ValueError(f"not a commit id: {commit!r}")
    return f"{PREFIX}{commit[:12]}"


def valid_snapname(name: str) -> bool:
    """Whether PVE takes ``name`` as a snapshot name (format and length; 'current' and
    'vzdump' are reserved)."""
    return (
        len(name) <= NAME_MAX
        and bool(_CONFIGID.match(name))
        and name.lower() not in ("current", "vzdump")
    )


def release_changes(
    states: Mapping[str, Any], commit: str | None, services: Sequence[WantedService]
) -> list[str]:
    """Why this run's release changes code, dependencies or config (empty: it does not, or
    there is no earlier release to go back to), from the services' one read
    (``ServiceStates``: the checkout's head, each unit's stamp and its env file's digest)
    and the run's commit: the same comparison the release itself makes, without its
    "not running" or "not healthy" reasons (a restart that changes nothing)."""
    units = states.get("units") or {}
    stamps = {svc.unit: dict((units.get(svc.unit) or {}).get("stamp") or {}) for svc in services}
    if not any(stamps.values()):
        return []  # never released: nothing to go back to
    head = states.get("head")
    reasons: list[str] = []
    if commit and head != commit:
        reasons.append(f"the checkout moves from {str(head or 'nothing')[:12]} to {commit[:12]}")
    for svc in services:
        started = stamps[svc.unit]
        if not started:
            reasons.append(f"{svc.unit} is released for the first time")
            continue
        env = svc.env_sha256 or (units.get(svc.unit) or {}).get("env_sha256")
        if started.get("unit") != svc.unit_sha256:
            reasons.append(f"{svc.unit}'s unit file changes")
        if started.get("env") != env:
            reasons.append(f"{svc.unit}'s env file changes")
        if started.get("commit") != (commit or head) and not (commit and head != commit):
            reasons.append(f"{svc.unit} runs {str(started.get('commit'))[:12]}")
    return reasons


def own_snapshots(listing: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The deploy's own snapshots from ``GET …/snapshot``, oldest first (by ``snaptime``,
    then name); ``current`` and every other snapshot are left out."""
    own = [
        s
        for s in listing
        if str(s.get("name", "")).startswith(PREFIX) and s.get("name") != "current"
    ]
    return sorted(own, key=lambda s: (int(s.get("snaptime") or 0), str(s["name"])))


def beyond_keep(listing: Iterable[Mapping[str, Any]], keep: int, taken: str) -> list[str]:
    """The names of the deploy's own snapshots to delete so that ``keep`` remain, oldest
    first; never ``taken`` (the one just made)."""
    own = [str(s["name"]) for s in own_snapshots(listing)]
    excess = len(own) - keep
    if excess <= 0:
        return []
    return [name for name in own if name != taken][:excess]


# ------------------------------------------------------------------------- the API steps


def listing(api: PveClient, ref: ContainerRef) -> list[dict[str, Any]]:
    return list(api.get(f"/nodes/{ref.node}/lxc/{ref.vmid}/snapshot") or [])


def can_snapshot(api: PveClient, ref: ContainerRef) -> bool:
    reply = api.get(f"/nodes/{ref.node}/lxc/{ref.vmid}/feature", feature="snapshot") or {}
    return bool(int(reply.get("hasFeature") or 0))


def unsupported_message(ref: ContainerRef) -> str:
    return (
        f"CT {ref.vmid}'s storage cannot snapshot it (GET /nodes/{ref.node}/lxc/{ref.vmid}/"
        "feature?feature=snapshot answers hasFeature 0, e.g. a raw volume on a dir storage); "
        "the release was stopped before the checkout moved, nothing was changed. Move the "
        "container to a storage that can (lvmthin, ZFS), set pve_snapshot_unsupported_ok = "
        "True to release without a snapshot, or pve_snapshot_before_release = False"
    )


def take(
    api: PveClient,
    ref: ContainerRef,
    *,
    name: str,
    description: str,
    keep: int,
    unsupported_ok: bool,
    timeout: float,
) -> str:
    """Take snapshot ``name`` (an existing one of that name is kept: a release retried),
    then delete the deploy's oldest beyond ``keep``. Returns what was done; raises
    :class:`SnapshotError` (or the task's error) when the release must not go on."""
    from .tasks import wait_task

    current = listing(api, ref)
    deadline = time.monotonic() + timeout
    while any(s.get("name") == name and s.get("snapstate") for s in current):
        # a run that died while its snapshot task ran: PVE finishes the task
        if time.monotonic() >= deadline:
            raise SnapshotError(
                f"snapshot {name} of CT {ref.vmid} is still incomplete (snapstate) after "
                f"{timeout:.0f}s; see the node's task log, then delete it (pct delsnapshot "
                f"{ref.vmid} {name} --force) and run again"
            )
        time.sleep(1.0)
        current = listing(api, ref)
    if any(s.get("name") == name for s in current):
        done = f"snapshot {name} of CT {ref.vmid} exists already (a retried release): kept"
    else:
        if not can_snapshot(api, ref):
            if not unsupported_ok:
                raise SnapshotError(unsupported_message(ref))
            logger.warning(
                f"CT {ref.vmid}: its storage cannot snapshot it; releasing without a snapshot "
                "(pve_snapshot_unsupported_ok)"
            )
            return f"no snapshot of CT {ref.vmid}: its storage cannot (allowed)"
        upid = str(
            api.post(
                f"/nodes/{ref.node}/lxc/{ref.vmid}/snapshot",
                snapname=name,
                description=description,
            )
        )
        wait_task(api, upid, timeout=timeout)
        done = f"snapshot {name} of CT {ref.vmid} taken"
        current = listing(api, ref)
    for old in beyond_keep(current, keep, name):
        try:
            upid = str(api.delete(f"/nodes/{ref.node}/lxc/{ref.vmid}/snapshot/{old}"))
            wait_task(api, upid, timeout=timeout)
            done += f"; {old} deleted (pve_snapshot_keep = {keep})"
        except Exception as exc:  # the release goes on: one snapshot more is kept
            logger.warning(f"CT {ref.vmid}: could not delete the old snapshot {old}: {exc}")
    return done


def rollback(api: PveClient, ref: ContainerRef, name: str, *, timeout: float) -> None:
    """Revert the container to snapshot ``name`` and start it (``start=1``): PVE stops a
    running container first. An unknown name is refused before anything changes."""
    from .tasks import forked_task, wait_task

    names = [str(s.get("name")) for s in own_snapshots(listing(api, ref))]
    others = [
        str(s.get("name"))
        for s in listing(api, ref)
        if s.get("name") != "current" and str(s.get("name")) not in names
    ]
    if name not in names and name not in others:
        known = ", ".join(names + others) or "none"
        raise SnapshotError(
            f"CT {ref.vmid} has no snapshot {name!r} (its snapshots: {known}); nothing was changed"
        )
    upid = str(api.post(f"/nodes/{ref.node}/lxc/{ref.vmid}/snapshot/{name}/rollback", start=True))
    wait_task(api, upid, timeout=timeout)
    # The start runs in a vzstart task of its own, after the rollback task has ended
    # (forked_task says why): a start that fails is reported by that task.
    start = forked_task(api, upid, "vzstart")
    if start is not None:
        wait_task(api, start, timeout=timeout)
