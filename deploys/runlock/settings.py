"""The run lock's setting: how long a run waits for another run on the same target."""

from __future__ import annotations

from dataclasses import dataclass

from ..common.checks import int_range
from ..common.setting import setting


@dataclass(frozen=True)
class RunLockSettings:
    """One run at a time on a target (the run lock, ``/run/egograph-deploy.lock``)."""

    run_lock_wait: int = setting(
        60,
        form="an integer number of seconds from 0 to 3600",
        doc="How long a run waits for another run on the same target to end (CI and a "
        "person at once) before it fails naming the holder: controller host, user, pid, "
        "entry point, start time. 0: fail at once",
        check=int_range(0, 3600),
    )
