"""The snapshot before a release: an operation on the container host, before the checkout
moves, deciding from the services' one read (no command of its own on a no-op run)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pyinfra import host
from pyinfra.api import FunctionCommand

from ..common.report import change_reason
from ..common.snapshot import FactRead, operation
from ..repo.commit import Commit, commit_of
from .snapshots import WantedService, release_changes, snapshot_name

if TYPE_CHECKING:
    from pyinfra.api.state import State

    from ..services.operations import ServiceProbe
    from .access import Pve

logger = logging.getLogger("pyinfra")


def _probe_read(probe: ServiceProbe, **_: Any) -> FactRead[dict[str, Any]]:
    return probe.read()


@operation(read=_probe_read)
def snapshot_before_release(
    states: dict[str, Any],
    services: tuple[WantedService, ...],
    *,
    probe: ServiceProbe,
    commit: Commit,
    pve: Pve,
    keep: int,
    unsupported_ok: bool,
) -> Any:
    """
    Snapshot the container before a release that changes its code, dependencies or a
    unit/env file, named after the run's commit (``egograph_<commit12>``), then delete the
    deploy's own oldest snapshots beyond ``keep``. A failed snapshot (or a storage that
    cannot snapshot, unless ``unsupported_ok``) fails the host here, before the checkout
    moves. No release, or none that changes anything: nothing, and no API call.

    + services: what the release starts each service with (:class:`.snapshots.WantedService`)
    + probe: the services' read (the :class:`ServiceProbe` the release decides from)
    + commit: the run's commit
    + pve: the container's API settings (:class:`.access.Pve`)
    + keep: how many of the deploy's snapshots remain (``pve_snapshot_keep``)
    + unsupported_ok: a storage that cannot snapshot lets the release go on, with a warning

    **Example:**

    .. code:: python

        snapshot_before_release(name="Snapshot before the release", services=services,
                                probe=probe, commit=commit, pve=Pve.from_settings(s),
                                keep=3, unsupported_ok=False)
    """
    want = commit_of(commit)
    reasons = release_changes(states, want, services)
    if not reasons:
        host.noop("the release changes nothing a snapshot would keep" if states.get("head")
                  else "no earlier release to keep")  # fmt: skip
        return
    name = snapshot_name(want or states["head"])
    for reason in reasons:
        change_reason(reason)
    description = f"egograph-deploy: before releasing {want or states['head']}"

    def run(state: State, host: Any) -> bool:  # pyinfra passes these by their names
        from .access import ProxmoxError, client, find
        from .errors import PveError, PveTaskError
        from .snapshots import SnapshotError, take

        try:
            ref = find(pve)
            if ref is None:
                raise ProxmoxError(f"CT {pve.hostname} not found on {pve.host}")
            done = take(
                client(pve),
                ref,
                name=name,
                description=description,
                keep=keep,
                unsupported_ok=unsupported_ok,
                timeout=float(pve.task_timeout),
            )
        except (SnapshotError, PveError, PveTaskError, ProxmoxError, OSError) as exc:
            host.log_styled(
                f"snapshot {name} before the release: {exc}", fg="red", log_func=logger.error
            )
            return False
        host.log(done)
        return True

    run.__name__ = f"snapshot_{name}"
    yield FunctionCommand(run, (), {})
