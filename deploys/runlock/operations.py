"""The run lock's operation: the first of every deploy that changes a target."""

from __future__ import annotations

from typing import Any

from pyinfra import host

from ..common.report import refuse
from ..common.snapshot import fact_read, operation
from .facts import RunLock
from .holder import held_message, leftover_message, reading_message


@operation(
    read=lambda path, record, wait, **_: fact_read(RunLock, path=path, record=record, wait=wait)
)
def run_lock(current: dict[str, Any], path: str, record: str, wait: int) -> Any:
    """
    One run at a time on this host: the read takes the lock (see :mod:`.facts`); this
    stops the run, before anything changes, when another run holds it.

    + path: the lock file (under ``/run``)
    + record: this controller as the lock file names it (:func:`.holder.controller_record`)
    + wait: seconds to wait for another run to end

    **Example:**

    .. code:: python

        run_lock(
            name="One run at a time",
            path=LOCK_PATH,
            record=controller_record("deploys/prod.py", "2026-12-02T07:31:05Z"),
            wait=60,
        )
    """
    state = current["state"]
    if state == "taken":
        host.noop(f"this run holds {path} until its SSH connection ends")
    elif state == "free":
        host.noop(f"no run holds {path} (looked, not taken: nothing executes yet)")
    elif state == "nossh":
        host.noop(f"not connected over SSH: no run lock ({path} is tied to the SSH connection)")
    elif state == "unknown" and not host.state.is_executing:
        # a container this run creates answers nothing while the run prepares
        host.noop(f"no answer about {path} yet (a target this run creates)")
    elif state == "unknown":
        yield from refuse(f"the run lock {path} cannot be taken: is flock (util-linux) installed?")
    elif state == "held":
        yield from refuse(
            held_message(current["holder"], path=path, wait=wait, executing=host.state.is_executing)
        )
    elif state == "leftover":
        yield from refuse(leftover_message(current["pids"], wait=wait))
    elif state == "reading":
        yield from refuse(reading_message(path=path, wait=wait))
    else:
        yield from refuse(f"the run lock {path} cannot be taken: {current.get('detail')}")
