"""One run at a time on a target: the run lock (``/run/egograph-deploy.lock``).

- :mod:`.settings`: ``run_lock_wait``
- :mod:`.holder`: the holder's record and the messages (pure)
- :mod:`.facts`: the read that takes the lock (or looks at it), within the run's one state
  read, and the holder process on the target that keeps it until the connection ends
- :mod:`.operations`: the run stops when another run holds it
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pyinfra import host
from pyinfra.api import deploy

from .holder import LOCK_PATH, RUN_ENV, controller_record, run_tag
from .operations import run_lock

if TYPE_CHECKING:
    from .settings import RunLockSettings


@deploy("Run lock")
def hold_run_lock(settings: RunLockSettings, entry: str) -> None:
    """The first step of a deploy that changes the target: its state read takes the lock,
    so everything it reads and changes after is this run's alone."""
    run_lock(
        name=f"One run at a time ({LOCK_PATH})",
        path=LOCK_PATH,
        record=controller_record(entry, _run_started(host.state)),
        wait=settings.run_lock_wait,
    )


def tag_commands() -> None:
    """Export this run's tag (:data:`.holder.RUN_ENV`) in front of every command pyinfra
    sends, facts included; the inventory calls it, before pyinfra connects. Outside
    pyinfra's CLI (no config yet) it does nothing."""
    from pyinfra.context import ctx_config

    if ctx_config.isset():
        config = ctx_config.get()
        config.ENV = {**config.ENV, RUN_ENV: run_tag()}


_STARTED = "_egograph_run_started"
"""Where the run keeps its start time: on pyinfra's State, so every host's record (and the
deploy's planning walk, which calls this again) names the same time."""


def _run_started(state: Any) -> str:
    started = getattr(state, _STARTED, None)
    if started is None:
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        setattr(state, _STARTED, started)
    return str(started)
